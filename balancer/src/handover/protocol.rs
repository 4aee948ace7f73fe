//! The handover conversation, as lines: what the new balancer (the taker) and the serving one
//! (the giver) say to each other on `--handover PATH`. Pure; the sockets are in `fds`.
//!
//! 1. taker: `take`;
//! 2. giver: `listeners NAME...` with one file descriptor per name (`SCM_RIGHTS`), or
//!    `refused REASON`;
//! 3. taker, once it serves on them: `serving`;
//! 4. giver, once it has stopped accepting: `released`.
//!
//! Every line starts with [`MAGIC`] and the version, so a stranger on the socket is told apart.

/// The first word of every line.
const MAGIC: &str = "balancer-handover";
/// The conversation's version; a line of another version is not understood.
const VERSION: &str = "1";

/// A listener that can be handed over, by the flag that sets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Name {
    /// `--listen` (plain HTTP, or the redirect with `--redirect-http`).
    Listen,
    /// `--tls-listen`.
    TlsListen,
    /// `--admin-listen`.
    AdminListen,
}

impl Name {
    pub fn flag(self) -> &'static str {
        match self {
            Name::Listen => "listen",
            Name::TlsListen => "tls-listen",
            Name::AdminListen => "admin-listen",
        }
    }

    fn parse(word: &str) -> Option<Name> {
        [Name::Listen, Name::TlsListen, Name::AdminListen]
            .into_iter()
            .find(|n| n.flag() == word)
    }
}

/// One line of the conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Take,
    Listeners(Vec<Name>),
    Refused(String),
    Serving,
    Released,
}

impl Message {
    /// The line, newline included.
    pub fn encode(&self) -> Vec<u8> {
        let body = match self {
            Message::Take => "take".to_owned(),
            Message::Listeners(names) => {
                let names: Vec<&str> = names.iter().map(|n| n.flag()).collect();
                format!("listeners {}", names.join(" "))
            }
            // One line: a reason never carries a newline.
            Message::Refused(reason) => format!("refused {}", reason.replace(['\n', '\r'], " ")),
            Message::Serving => "serving".to_owned(),
            Message::Released => "released".to_owned(),
        };
        format!("{MAGIC} {VERSION} {body}\n").into_bytes()
    }

    /// The message in `bytes` (one line); `Err` says what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<Message, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
        let line = text.strip_suffix('\n').ok_or("no whole line")?;
        // `listeners` with none ends in a space.
        let line = line.trim_end_matches(' ');
        let mut words = line.split(' ');
        if words.next() != Some(MAGIC) {
            return Err(format!("not a balancer handover: {:?}", shorten(line)));
        }
        match words.next() {
            Some(VERSION) => {}
            other => {
                return Err(format!(
                    "handover version {other:?}, this balancer speaks {VERSION}"
                ))
            }
        }
        let rest: Vec<&str> = words.collect();
        match rest.as_slice() {
            ["take"] => Ok(Message::Take),
            ["serving"] => Ok(Message::Serving),
            ["released"] => Ok(Message::Released),
            ["refused", reason @ ..] => Ok(Message::Refused(reason.join(" "))),
            ["listeners", names @ ..] => names
                .iter()
                .map(|w| Name::parse(w).ok_or_else(|| format!("unknown listener {w:?}")))
                .collect::<Result<_, _>>()
                .map(Message::Listeners),
            _ => Err(format!("unexpected message {:?}", shorten(line))),
        }
    }
}

fn shorten(line: &str) -> String {
    line.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        let all = [
            Message::Take,
            Message::Listeners(vec![Name::Listen, Name::TlsListen, Name::AdminListen]),
            Message::Listeners(vec![]),
            Message::Refused("another balancer is taking over".into()),
            Message::Serving,
            Message::Released,
        ];
        for message in all {
            assert_eq!(Message::decode(&message.encode()), Ok(message));
        }
    }

    #[test]
    fn strangers_and_other_versions_are_refused() {
        assert!(Message::decode(b"GET / HTTP/1.1\r\n").is_err());
        assert!(Message::decode(b"balancer-handover 2 take\n").is_err());
        assert!(
            Message::decode(b"balancer-handover 1 take").is_err(),
            "no newline"
        );
        assert!(Message::decode(b"balancer-handover 1 listeners listen bogus\n").is_err());
        assert!(Message::decode(b"balancer-handover 1 dance\n").is_err());
    }

    #[test]
    fn a_reason_stays_on_one_line() {
        let line = Message::Refused("a\nb".into()).encode();
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
    }
}
