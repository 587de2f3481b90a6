//! The LogQL subset the simulator's Loki face understands: a stream selector (`=`, `!=`,
//! `=~`, `!~`) and line filters (`|=`, `!=`, `|~`, `!~`); anything else is an error.

use regex::Regex;

use super::Labels;

#[derive(Debug, Clone)]
enum LabelOp {
    Eq(String),
    Ne(String),
    Re(Regex),
    NotRe(Regex),
}

#[derive(Debug, Clone)]
enum LineFilter {
    Contains(String),
    NotContains(String),
    Re(Regex),
    NotRe(Regex),
}

/// A parsed log query.
#[derive(Debug, Clone)]
pub struct LogQuery {
    matchers: Vec<(String, LabelOp)>,
    filters: Vec<LineFilter>,
}

impl LogQuery {
    pub fn matches_stream(&self, l: &Labels) -> bool {
        self.matchers.iter().all(|(k, op)| {
            let v = l.get(k).map(String::as_str).unwrap_or("");
            match op {
                LabelOp::Eq(x) => v == x,
                LabelOp::Ne(x) => v != x,
                LabelOp::Re(r) => r.is_match(v),
                LabelOp::NotRe(r) => !r.is_match(v),
            }
        })
    }

    pub fn matches_line(&self, line: &str) -> bool {
        self.filters.iter().all(|f| match f {
            LineFilter::Contains(s) => line.contains(s.as_str()),
            LineFilter::NotContains(s) => !line.contains(s.as_str()),
            LineFilter::Re(r) => r.is_match(line),
            LineFilter::NotRe(r) => !r.is_match(line),
        })
    }
}

struct Lexer<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Lexer<'a> {
    fn ws(&mut self) {
        while self.s[self.i..].starts_with(char::is_whitespace) {
            self.i += self.s[self.i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    fn eat(&mut self, t: &str) -> bool {
        self.ws();
        if self.s[self.i..].starts_with(t) {
            self.i += t.len();
            true
        } else {
            false
        }
    }
    fn err(&self, what: &str) -> String {
        format!("parse error at line 1, col {}: {what}", self.i + 1)
    }
    fn ident(&mut self) -> Result<String, String> {
        self.ws();
        let rest = &self.s[self.i..];
        let n = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if n == 0 {
            return Err(self.err("syntax error: expected a label name"));
        }
        self.i += n;
        Ok(rest[..n].to_string())
    }
    fn string(&mut self) -> Result<String, String> {
        self.ws();
        let rest = &self.s[self.i..];
        if let Some(r) = rest.strip_prefix('`') {
            let end = r
                .find('`')
                .ok_or_else(|| self.err("unterminated raw string"))?;
            self.i += end + 2;
            return Ok(r[..end].to_string());
        }
        let Some(r) = rest.strip_prefix('"') else {
            return Err(self.err("syntax error: expected a string"));
        };
        let mut out = String::new();
        let mut it = r.char_indices();
        while let Some((j, c)) = it.next() {
            match c {
                '"' => {
                    self.i += j + 2;
                    return Ok(out);
                }
                '\\' => match it.next() {
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    Some((_, c)) => out.push(c),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(self.err("unterminated string"))
    }
}

fn regex(s: &str, anchored: bool) -> Result<Regex, String> {
    let src = if anchored {
        format!("^(?:{s})$")
    } else {
        s.to_string()
    };
    Regex::new(&src).map_err(|e| format!("invalid regex {s:?}: {e}"))
}

/// Parse the LogQL subset; the error reads like Loki's.
pub fn parse_logql(q: &str) -> Result<LogQuery, String> {
    let mut lx = Lexer { s: q, i: 0 };
    if !lx.eat("{") {
        return Err(lx.err(
            "syntax error: only log queries with a stream selector are supported by the simulator",
        ));
    }
    let mut matchers = Vec::new();
    loop {
        if lx.eat("}") {
            break;
        }
        if !matchers.is_empty() && !lx.eat(",") {
            return Err(lx.err("syntax error: expected , or }"));
        }
        let name = lx.ident()?;
        let op = if lx.eat("=~") {
            LabelOp::Re(regex(&lx.string()?, true)?)
        } else if lx.eat("!~") {
            LabelOp::NotRe(regex(&lx.string()?, true)?)
        } else if lx.eat("!=") {
            LabelOp::Ne(lx.string()?)
        } else if lx.eat("=") {
            LabelOp::Eq(lx.string()?)
        } else {
            return Err(lx.err("syntax error: expected =, !=, =~ or !~"));
        };
        matchers.push((name, op));
    }
    if !matchers.iter().any(|(_, op)| match op {
        LabelOp::Eq(v) => !v.is_empty(),
        LabelOp::Re(r) => !r.is_match(""),
        _ => false,
    }) {
        return Err(
            "queries require at least one regexp or equality matcher that does not have an empty-compatible value. For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"
                .into(),
        );
    }
    let mut filters = Vec::new();
    loop {
        lx.ws();
        if lx.i >= q.len() {
            break;
        }
        let f = if lx.eat("|=") {
            LineFilter::Contains(lx.string()?)
        } else if lx.eat("|~") {
            LineFilter::Re(regex(&lx.string()?, false)?)
        } else if lx.eat("!=") {
            LineFilter::NotContains(lx.string()?)
        } else if lx.eat("!~") {
            LineFilter::NotRe(regex(&lx.string()?, false)?)
        } else {
            return Err(lx.err(
                "syntax error: only line filters (|=, !=, |~, !~) are supported by the simulator",
            ));
        };
        filters.push(f);
    }
    Ok(LogQuery { matchers, filters })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logql_subset() {
        let q =
            parse_logql(r#"{host="node1", unit=~"k3s.*"} |~ "(?i)(error|fail|panic)" != "debug""#)
                .unwrap();
        let l: Labels = [("host", "node1"), ("unit", "k3s.service")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(q.matches_stream(&l));
        assert!(q.matches_line("E1126 Error syncing pod"));
        assert!(!q.matches_line("all good"));
        assert!(!q.matches_line("debug: failed"));
        assert!(parse_logql(r#"{host!="x"}"#).is_err());
        assert!(parse_logql(r#"rate({host="x"}[5m])"#).is_err());
        assert!(parse_logql(r#"{host="x"} | json"#).is_err());
        let q = parse_logql(r#"{host=~"node[12]"} |= `fail` !~ "heartbeat""#).unwrap();
        assert!(q.matches_line("failed command"));
        assert!(!q.matches_line("failed to send out heartbeat"));
    }
}
