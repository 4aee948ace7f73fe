//! A route's `basic_auth = { realm, users_file }`: HTTP Basic authentication against an Apache
//! htpasswd file of bcrypt entries (`htpasswd -B`). Owned here, pure apart from the bcrypt work:
//! the file's rules (bcrypt only; any other scheme is refused at load with its line), the
//! `Authorization` header's parsing (anything malformed is simply not a credential), and the
//! comparison, which costs one bcrypt verification whether the user exists or not (an unknown
//! user is checked against a real entry's hash and refused whatever its result), so the answer's
//! timing tells no one which users exist.
//!
//! bcrypt is deliberately slow (about a millisecond at `htpasswd -B`'s cost 5, doubling with
//! each step): the proxy runs [`BasicAuth::verify`] off the event loop.

use http::header::HeaderValue;

/// The largest users file read (a file of thousands of users is far smaller).
pub const MAX_USERS_FILE: u64 = 1 << 20;

/// The realm, the challenge sent with a 401 and the users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// `Basic realm="..."`, for `WWW-Authenticate`.
    pub challenge: HeaderValue,
    /// (user, bcrypt hash), in the file's order (at least one).
    users: Vec<(String, String)>,
    /// The index of the hash an unknown user is checked against (the costliest).
    dummy: usize,
}

/// Why a users file was refused: its 1-based line (0: the whole file) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersError {
    pub line: usize,
    pub why: String,
}

/// The `WWW-Authenticate` value of `realm`: printable, without `"` or `\`.
pub fn challenge(realm: &str) -> Result<HeaderValue, String> {
    if realm.is_empty()
        || realm
            .chars()
            .any(|c| c == '"' || c == '\\' || c.is_control())
    {
        return Err("`realm` is a non-empty text without `\"`, `\\` or line breaks".into());
    }
    HeaderValue::from_str(&format!("Basic realm=\"{realm}\""))
        .map_err(|_| "`realm` must be visible ASCII text".to_string())
}

impl BasicAuth {
    /// The policy for `challenge` (see [`challenge`]) and the text of an htpasswd file:
    /// `user:hash` lines, blank lines and `#` comments skipped, every hash bcrypt.
    pub fn new(challenge: HeaderValue, text: &str) -> Result<BasicAuth, UsersError> {
        let mut users: Vec<(String, String)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let err = |why: String| UsersError { line: number, why };
            let Some((user, hash)) = line.split_once(':') else {
                return Err(err("not a `user:hash` line".into()));
            };
            if user.is_empty() {
                return Err(err("the user name is empty".into()));
            }
            if users.iter().any(|(u, _)| u == user) {
                return Err(err(format!("user `{user}` is listed twice")));
            }
            bcrypt_cost(hash).ok_or_else(|| err(format!("user `{user}`: {}", scheme(hash))))?;
            users.push((user.to_owned(), hash.to_owned()));
        }
        let dummy = (0..users.len())
            .max_by_key(|&i| users.get(i).and_then(|(_, h)| bcrypt_cost(h)))
            .ok_or(UsersError {
                line: 0,
                why: "the users file has no user (make one with `htpasswd -B`)".into(),
            })?;
        Ok(BasicAuth {
            challenge,
            users,
            dummy,
        })
    }

    /// How many users the file lists.
    pub fn users(&self) -> usize {
        self.users.len()
    }

    /// Whether `authorization` (the request's header, if any) names a user of the file with
    /// their password: [`BasicAuth::lookup`] then [`Pending::finish`].
    pub fn verify(&self, authorization: Option<&HeaderValue>) -> bool {
        self.lookup(authorization).is_some_and(Pending::finish)
    }

    /// The cheap half of [`BasicAuth::verify`]: the credential of a well-formed `Basic` header,
    /// with the hash to check it against (a real entry's for an unknown user, so that the costly
    /// half takes as long); `None` (refused at once) when the header is missing or malformed.
    pub fn lookup(&self, authorization: Option<&HeaderValue>) -> Option<Pending> {
        let (user, password) = credentials(authorization?.as_bytes())?;
        let known = self
            .users
            .iter()
            .find(|(u, _)| u.as_bytes() == user.as_slice());
        let (_, hash) = known.or_else(|| self.users.get(self.dummy))?;
        Some(Pending {
            password,
            hash: hash.clone(),
            known: known.is_some(),
        })
    }
}

/// A credential waiting for its bcrypt verification (owned, to move off the event loop).
#[derive(Debug)]
pub struct Pending {
    password: Vec<u8>,
    hash: String,
    known: bool,
}

impl Pending {
    /// The costly half: one bcrypt verification, whether the user is known or not.
    pub fn finish(self) -> bool {
        let matched = bcrypt::verify(&self.password, &self.hash).unwrap_or(false);
        self.known && matched
    }
}

/// The cost of a bcrypt hash (`$2y$05$` + 53 characters), or `None` for anything else.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    let parts: bcrypt::HashParts = hash.parse().ok()?;
    Some(parts.get_cost())
}

/// What a refused hash is, to say which `htpasswd` option made it.
fn scheme(hash: &str) -> &'static str {
    if hash.starts_with("$apr1$") {
        "an MD5 entry ($apr1$, `htpasswd -m`); only bcrypt is accepted: `htpasswd -B`"
    } else if hash.starts_with("{SHA}") {
        "a SHA-1 entry ({SHA}, `htpasswd -s`); only bcrypt is accepted: `htpasswd -B`"
    } else if hash.starts_with("$5$") || hash.starts_with("$6$") {
        "a SHA-2 crypt entry; only bcrypt is accepted: `htpasswd -B`"
    } else if hash.starts_with("$2") {
        "a malformed bcrypt entry"
    } else {
        "not a bcrypt entry (crypt or plain text); only bcrypt is accepted: `htpasswd -B`"
    }
}

/// `Basic <base64 of user:password>` (the scheme in any case) into user and password.
fn credentials(header: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (scheme, rest) = header.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let decoded = base64_decode(rest.trim_ascii())?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let (user, password) = decoded.split_at(colon);
    Some((user.to_vec(), password.get(1..)?.to_vec()))
}

/// Standard base64 with padding (RFC 4648 section 4); `None` for anything else.
fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    if input.is_empty() || input.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let chunks = input.len() / 4;
    for (i, chunk) in input.chunks_exact(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != chunks) {
            return None;
        }
        let mut n = 0u32;
        for &c in chunk.get(..4 - pad)? {
            n = (n << 6) | value(c)?;
        }
        n <<= 6 * pad as u32;
        let bytes = n.to_be_bytes();
        out.extend_from_slice(bytes.get(1..4 - pad)?);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(data: &[u8]) -> String {
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in data.chunks(3) {
            let mut n = [0u8; 3];
            n[..chunk.len()].copy_from_slice(chunk);
            let v = (u32::from(n[0]) << 16) | (u32::from(n[1]) << 8) | u32::from(n[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(ABC[((v >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn auth_with(users: &[(&str, &str)]) -> BasicAuth {
        let text: String = users
            .iter()
            .map(|(u, p)| format!("{u}:{}\n", bcrypt::hash(p, 4).unwrap()))
            .collect();
        BasicAuth::new(challenge("test").unwrap(), &text).unwrap()
    }

    fn basic(user_pass: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Basic {}", encode(user_pass.as_bytes()))).unwrap()
    }

    #[test]
    fn right_password_only() {
        let auth = auth_with(&[("alice", "wonderland"), ("bob", "builder")]);
        assert!(auth.verify(Some(&basic("alice:wonderland"))));
        assert!(auth.verify(Some(&basic("bob:builder"))));
        assert!(!auth.verify(Some(&basic("alice:builder"))));
        assert!(
            !auth.verify(Some(&basic("carol:wonderland"))),
            "unknown user"
        );
        assert!(!auth.verify(None));
        let lower = format!("basic {}", encode(b"alice:wonderland"));
        assert!(auth.verify(Some(&HeaderValue::from_str(&lower).unwrap())));
    }

    #[test]
    fn an_unknown_user_with_the_dummy_hashs_password_is_refused() {
        let auth = auth_with(&[("alice", "wonderland")]);
        assert!(!auth.verify(Some(&basic("mallory:wonderland"))));
    }

    #[test]
    fn malformed_headers_are_no_credentials() {
        let auth = auth_with(&[("alice", "wonderland")]);
        for raw in [
            "",
            "Basic",
            "Basic ",
            "Bearer abc",
            "Basic !!!!",
            "Basic YWxpY2U=",
            "Basic YWxp=2U=",
            "Basic YQ",
            "Basic ====",
            "Digest username=\"alice\"",
        ] {
            let v = HeaderValue::from_str(raw).unwrap();
            assert!(!auth.verify(Some(&v)), "{raw:?}");
        }
        let bytes = HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap();
        assert!(!auth.verify(Some(&bytes)));
    }

    #[test]
    fn other_schemes_are_refused_with_their_line() {
        let ch = challenge("r").unwrap();
        let good = bcrypt::hash("x", 4).unwrap();
        let text = format!("# users\nalice:{good}\n\nbob:$apr1$abc$def\n");
        let err = BasicAuth::new(ch.clone(), &text).unwrap_err();
        assert_eq!(err.line, 4);
        assert!(err.why.contains("MD5"), "{}", err.why);
        for bad in [
            "carol:{SHA}abc=",
            "dave:plain",
            "eve",
            ":x",
            "f:$2y$05$short",
        ] {
            let err = BasicAuth::new(ch.clone(), &format!("a:{good}\n{bad}\n")).unwrap_err();
            assert_eq!(err.line, 2, "{bad}");
        }
        let dup = BasicAuth::new(ch.clone(), &format!("a:{good}\na:{good}\n")).unwrap_err();
        assert_eq!(dup.line, 2);
        assert_eq!(BasicAuth::new(ch, "# none\n").unwrap_err().line, 0);
    }

    #[test]
    fn realms_are_quoted_safely() {
        assert_eq!(
            challenge("Staff only").unwrap(),
            "Basic realm=\"Staff only\""
        );
        assert!(challenge("a\"b").is_err());
        assert!(challenge("a\nb").is_err());
        assert!(challenge("").is_err());
    }

    proptest! {
        #[test]
        fn base64_round_trips(data in prop::collection::vec(any::<u8>(), 0..64)) {
            let encoded = encode(&data);
            prop_assert_eq!(base64_decode(encoded.as_bytes()).unwrap_or_default(), data);
        }

        #[test]
        fn any_header_is_handled_without_panic(raw in prop::collection::vec(any::<u8>(), 0..40)) {
            let _ = credentials(&raw);
            let _ = base64_decode(&raw);
        }
    }
}
