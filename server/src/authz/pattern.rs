//! Channel patterns of authorization rules: literal text with `{name}` placeholders, such as
//! `private-user.{id}` or `private-App.Models.User.{id}`. A placeholder matches a non-empty run
//! of characters other than `.`, so `private-user.{id}` matches `private-user.42` but not
//! `private-user.42.admin`; matching yields each placeholder's value.

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Placeholder(String),
}

/// A parsed channel pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelPattern {
    pieces: Vec<Piece>,
}

/// Placeholder names and the text they matched, in pattern order.
pub type Captures = Vec<(String, String)>;

impl ChannelPattern {
    /// Parses a pattern; the error says what is wrong with it (a config file error).
    pub fn parse(pattern: &str) -> Result<ChannelPattern, String> {
        let mut pieces = Vec::new();
        let mut rest = pattern;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(at) if rest.as_bytes()[at] == b'{' => {
                    if at > 0 {
                        pieces.push(Piece::Literal(rest[..at].to_string()));
                    }
                    let close = rest[at..]
                        .find('}')
                        .ok_or_else(|| format!("channel pattern {pattern:?} has an unclosed {{"))?;
                    let name = &rest[at + 1..at + close];
                    if name.is_empty()
                        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    {
                        return Err(format!(
                            "channel pattern {pattern:?}: placeholder {{{name}}} must be a non-empty name \
                             of letters, digits and _"
                        ));
                    }
                    // Two placeholders in a row could split their text any way at all.
                    if matches!(pieces.last(), Some(Piece::Placeholder(_))) {
                        return Err(format!(
                            "channel pattern {pattern:?} has two placeholders with nothing between them"
                        ));
                    }
                    if pieces
                        .iter()
                        .any(|p| *p == Piece::Placeholder(name.to_string()))
                    {
                        return Err(format!("channel pattern {pattern:?} uses {{{name}}} twice"));
                    }
                    pieces.push(Piece::Placeholder(name.to_string()));
                    rest = &rest[at + close + 1..];
                }
                Some(_) => {
                    return Err(format!("channel pattern {pattern:?} has a }} without a {{"))
                }
                None => {
                    pieces.push(Piece::Literal(rest.to_string()));
                    rest = "";
                }
            }
        }
        if pieces.is_empty() {
            return Err("a channel pattern may not be empty".into());
        }
        Ok(ChannelPattern { pieces })
    }

    /// Whether the pattern has a placeholder called `name`.
    pub fn has_placeholder(&self, name: &str) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Placeholder(n) if n == name))
    }

    /// The placeholders' values if `channel` matches the whole pattern.
    pub fn captures(&self, channel: &str) -> Option<Captures> {
        let mut captures = Vec::new();
        match_from(&self.pieces, channel, &mut captures).then_some(captures)
    }
}

/// Matches `pieces` against all of `text`, trying every split a placeholder allows (patterns
/// and channel names are short, so backtracking costs nothing worth avoiding).
fn match_from(pieces: &[Piece], text: &str, captures: &mut Captures) -> bool {
    match pieces.split_first() {
        None => text.is_empty(),
        Some((Piece::Literal(literal), rest)) => text
            .strip_prefix(literal.as_str())
            .is_some_and(|after| match_from(rest, after, captures)),
        Some((Piece::Placeholder(name), rest)) => {
            let longest = text.find('.').unwrap_or(text.len());
            (1..=longest)
                .filter(|&end| text.is_char_boundary(end))
                .any(|end| {
                    captures.push((name.clone(), text[..end].to_string()));
                    let matched = match_from(rest, &text[end..], captures);
                    if !matched {
                        captures.pop();
                    }
                    matched
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(pattern: &str, channel: &str) -> Option<Vec<(String, String)>> {
        ChannelPattern::parse(pattern).unwrap().captures(channel)
    }

    fn pair(name: &str, value: &str) -> (String, String) {
        (name.to_string(), value.to_string())
    }

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert_eq!(caps("private-news", "private-news"), Some(vec![]));
        assert_eq!(caps("private-news", "private-news2"), None);
        assert_eq!(caps("private-news", "private-new"), None);
    }

    #[test]
    fn placeholders_capture_one_dot_free_segment() {
        assert_eq!(
            caps("private-user.{id}", "private-user.42"),
            Some(vec![pair("id", "42")])
        );
        assert_eq!(caps("private-user.{id}", "private-user."), None);
        assert_eq!(caps("private-user.{id}", "private-user.42.admin"), None);
        assert_eq!(
            caps("private-App.Models.User.{id}", "private-App.Models.User.7"),
            Some(vec![pair("id", "7")])
        );
        assert_eq!(
            caps("private-App.Models.User.{id}", "private-App.Models.Team.7"),
            None
        );
    }

    #[test]
    fn placeholders_backtrack_to_fit_the_text_after_them() {
        assert_eq!(
            caps("presence-{team}-room-{room}", "presence-a-b-room-c-room-d"),
            Some(vec![pair("team", "a-b"), pair("room", "c-room-d")])
        );
        assert_eq!(caps("private-{a}-x", "private-x-y"), None);
    }

    #[test]
    fn malformed_patterns_are_config_errors() {
        assert!(ChannelPattern::parse("").is_err());
        assert!(ChannelPattern::parse("private-{id")
            .unwrap_err()
            .contains("unclosed"));
        assert!(ChannelPattern::parse("private-id}").is_err());
        assert!(ChannelPattern::parse("private-{}").is_err());
        assert!(ChannelPattern::parse("private-{a b}").is_err());
        assert!(ChannelPattern::parse("private-{a}{b}")
            .unwrap_err()
            .contains("nothing between"));
        assert!(ChannelPattern::parse("private-{a}.{a}")
            .unwrap_err()
            .contains("twice"));
    }
}
