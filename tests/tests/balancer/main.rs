//! The balancer in front of real and purpose-built backends (one test binary, one module per concern):
//! DNS that changes under it ([`dns`]), proxying rules ([`proxy`]), backends that fail or move
//! ([`proxy_failing_backends`]), real `app` replicas ([`replicas`]), request IDs ([`request_id`]),
//! traffic management ([`traffic`]), HTTP/2 to the replicas ([`h2c_replicas`]), a replica that writes
//! an unasked-for response ([`stray_response`]), other stray bytes ([`stray_framing`]), gRPC through the
//! balancer ([`grpc`]), idle keep-alive connections apart from slow heads ([`keep_alive`]), replacing the
//! balancer itself with no failed request ([`handover`]) and on sockets systemd passes ([`socket_activation`]).

mod dns;
mod grpc;
mod h2c_replicas;
mod handover;
mod keep_alive;
mod proxy;
mod proxy_failing_backends;
mod replicas;
mod request_id;
mod socket_activation;
mod stray_framing;
mod stray_response;
mod traffic;
