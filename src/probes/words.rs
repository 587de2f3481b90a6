//! Words of shell command lines: inventory values checked before they go into command text
//! ([`Word`], refused with the host and field named), quoting for the operator's own values
//! ([`quote`]), and splitting a command line back into words ([`split`], [`program`]) for the
//! recognisers.

/// A value that is safe as one word of a shell command line: ASCII letters, digits, `.`, `_`,
/// `-` (and `:` in addresses), not empty, not starting with `-` (it would read as an option).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Word(String);

/// An inventory value refused for a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsafeWord {
    /// The host's inventory id.
    pub host: String,
    /// The inventory field (`hostname`, `sshHost`, ...).
    pub field: String,
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for UnsafeWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "host {:?}: field \"{}\": {:?} {}: refusing to put it into a shell command (fix it in the inventory)",
            self.host, self.field, self.value, self.problem
        )
    }
}

impl std::error::Error for UnsafeWord {}

impl Word {
    /// A hostname, inventory id or user name.
    pub fn name(host: &str, field: &str, value: &str) -> Result<Self, UnsafeWord> {
        Self::check(host, field, value, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
        })
    }

    /// An address to reach a host: a name, an IPv4 or an IPv6 address.
    pub fn address(host: &str, field: &str, value: &str) -> Result<Self, UnsafeWord> {
        Self::check(host, field, value, |c| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':')
        })
    }

    fn check(
        host: &str,
        field: &str,
        value: &str,
        allowed: impl Fn(char) -> bool,
    ) -> Result<Self, UnsafeWord> {
        let refuse = |problem: String| UnsafeWord {
            host: host.to_string(),
            field: field.to_string(),
            value: value.to_string(),
            problem,
        };
        if value.is_empty() {
            return Err(refuse("is empty".into()));
        }
        if value.starts_with('-') {
            return Err(refuse(
                "starts with `-` (it would read as an option)".into(),
            ));
        }
        if let Some(c) = value.chars().find(|c| !allowed(*c)) {
            return Err(refuse(if c.is_whitespace() || c.is_control() {
                format!("holds the character {c:?}")
            } else {
                format!("holds `{c}`, which a shell would interpret")
            }));
        }
        Ok(Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Word {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters a word may hold without quoting.
fn plain(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(c, '.' | '_' | '-' | '/' | ':' | '+' | '@' | '=' | ',' | '%')
}

/// `value` as one shell word: as is when it only holds plain characters, else in single
/// quotes (`'` written as `'\''`). For the operator's own values (the flake reference).
pub fn quote(value: &str) -> String {
    if !value.is_empty() && value.chars().all(plain) {
        return value.to_string();
    }
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Split a simple command line into words as `sh` would (quotes and backslashes removed, no
/// expansion). `None` when it is not one simple command: a control operator or redirection
/// (`;`, `&`, `|`, `<`, `>`, `(`, `)`, a backquote) outside quotes, or an unterminated quote.
pub fn split(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => cur.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => cur.push(c),
                            '\n' => {}
                            c => {
                                cur.push('\\');
                                cur.push(c);
                            }
                        },
                        '`' => return None,
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(c) => cur.push(c),
                }
            }
            ';' | '&' | '|' | '<' | '>' | '(' | ')' | '`' => return None,
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Some(words)
}

/// The words from the program run on: past `sudo [-opts]`, `doas`, `exec`, `env [-opts]`,
/// `command` and `NAME=value` assignments.
pub fn program(mut words: &[String]) -> &[String] {
    loop {
        let Some(first) = words.first() else {
            return words;
        };
        match first.as_str() {
            "sudo" | "doas" | "env" | "exec" | "command" => {
                words = &words[1..];
                while let Some(w) = words.first().filter(|w| w.starts_with('-')) {
                    // `sudo -u USER`, `-g GROUP`: the option's value goes too.
                    let takes_value = matches!(w.as_str(), "-u" | "-g" | "-C" | "-D" | "-h");
                    words = &words[1..];
                    if takes_value && !words.is_empty() {
                        words = &words[1..];
                    }
                }
            }
            w if is_assignment(w) => words = &words[1..],
            _ => return words,
        }
    }
}

fn is_assignment(w: &str) -> bool {
    w.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_shell_characters_are_refused_with_host_and_field() {
        for ok in ["node1", "instance_1", "cp-1.home.arpa", "Node.2"] {
            assert_eq!(Word::name("h", "hostname", ok).unwrap().as_str(), ok);
        }
        for (bad, what) in [
            ("node1;reboot", "`;`"),
            ("$(id)", "`$`"),
            ("a b", "' '"),
            ("x`y`", "holds ```"),
            ("n\nx", "'\\n'"),
            ("-oProxyCommand=x", "starts with `-`"),
            ("", "is empty"),
            ("a|b", "`|`"),
            ("a'b", "`'`"),
            ("ünï", "`ü`"),
        ] {
            let e = Word::name("instance_9", "hostname", bad).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with("host \"instance_9\": field \"hostname\": "),
                "{msg}"
            );
            assert!(msg.contains(what), "{bad:?}: {msg}");
            assert!(
                msg.contains("refusing to put it into a shell command"),
                "{msg}"
            );
        }
        assert!(Word::address("h", "sshHost", "fd00::1").is_ok());
        assert!(Word::name("h", "hostname", "fd00::1").is_err());
        assert!(Word::address("h", "sshHost", "[fd00::1]").is_err());
    }

    #[test]
    fn quoting_survives_splitting() {
        for v in [
            "github:me/infra",
            "git+https://example.org/r?ref=main&rev=abc",
            "/srv/my flake",
            "it's",
            "",
            "$(reboot)",
            "a\"b\\c",
        ] {
            let q = quote(v);
            assert_eq!(
                split(&format!("nix build {q}")),
                Some(vec!["nix".into(), "build".into(), v.to_string()]),
                "{v:?} → {q}"
            );
        }
        assert_eq!(quote("github:me/infra"), "github:me/infra");
        assert_eq!(quote("a b"), "'a b'");
    }

    #[test]
    fn the_program_is_found_past_sudo_env_and_assignments() {
        let p = |line: &str| {
            let w = split(line).unwrap();
            program(&w).first().cloned()
        };
        assert_eq!(
            p("sudo -n -u root env -i A=1 B_2=x exec ls -l").as_deref(),
            Some("ls")
        );
        assert_eq!(
            p("PATH=/x:$PATH nixos-rebuild").as_deref(),
            Some("nixos-rebuild")
        );
        assert_eq!(p("1A=x ls").as_deref(), Some("1A=x"));
        assert_eq!(p("sudo").as_deref(), None);
    }

    #[test]
    fn splitting_is_for_one_simple_command() {
        assert_eq!(
            split("  sudo -n  nixos-rebuild switch \"--flake\" 'x'#y  ").unwrap(),
            ["sudo", "-n", "nixos-rebuild", "switch", "--flake", "x#y"]
        );
        assert_eq!(split("a\\ b c").unwrap(), ["a b", "c"]);
        assert_eq!(split("").unwrap(), Vec::<String>::new());
        for bad in [
            "echo hi; reboot",
            "true && reboot",
            "a | b",
            "a > /etc/x",
            "echo `id`",
            "echo \"`id`\"",
            "(reboot)",
            "echo 'open",
            "echo \"open",
        ] {
            assert_eq!(split(bad), None, "{bad}");
        }
    }
}
