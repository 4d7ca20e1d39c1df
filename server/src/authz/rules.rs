//! Channel rules: which authenticated users may subscribe to which channels. A rule is a
//! channel pattern plus conditions over the token's claims (a placeholder equals a claim, a
//! placeholder is in a list claim; none means any authenticated user), optionally handing the
//! final say to the app's upstream URL. The first rule whose pattern matches decides; a channel
//! no rule matches is denied.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::pattern::{Captures, ChannelPattern};

/// How long an upstream may take unless the rule says otherwise.
const DEFAULT_UPSTREAM_TIMEOUT_MS: u64 = 3000;

/// A rule as the config file writes it (`[[apps.authz.rules]]`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    channel: String,
    /// Placeholder -> claim whose value (string or number) must equal the placeholder's text.
    #[serde(default)]
    claim_equals: BTreeMap<String, String>,
    /// Placeholder -> claim holding a list that must contain the placeholder's text.
    #[serde(default)]
    claim_contains: BTreeMap<String, String>,
    /// Claims copied into presence `user_info` on this rule's channels (else the app's list).
    #[serde(default)]
    user_info_claims: Option<Vec<String>>,
    /// URL the app answers allow/deny at, after the conditions above hold.
    #[serde(default)]
    upstream: Option<String>,
    #[serde(default)]
    upstream_timeout_ms: Option<u64>,
}

/// Where a rule delegates its decision.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: reqwest::Url,
    pub timeout: Duration,
}

/// A checked rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pattern: ChannelPattern,
    claim_equals: BTreeMap<String, String>,
    claim_contains: BTreeMap<String, String>,
    pub user_info_claims: Option<Vec<String>>,
    pub upstream: Option<Upstream>,
}

impl TryFrom<RuleFile> for Rule {
    type Error = String;

    fn try_from(file: RuleFile) -> Result<Rule, String> {
        let pattern = ChannelPattern::parse(&file.channel)?;
        let placeholders = file.claim_equals.keys().chain(file.claim_contains.keys());
        if let Some(unknown) = placeholders
            .into_iter()
            .find(|p| !pattern.has_placeholder(p))
        {
            let channel = &file.channel;
            return Err(format!(
                "rule for {channel:?} has a condition on {{{unknown}}}, which the pattern lacks"
            ));
        }
        let upstream = match file.upstream {
            Some(url) => {
                let url = reqwest::Url::parse(&url).map_err(|e| {
                    format!(
                        "rule for {:?}: upstream {url:?} is not a URL: {e}",
                        file.channel
                    )
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(format!(
                        "rule for {:?}: upstream must be an http(s) URL",
                        file.channel
                    ));
                }
                let ms = file
                    .upstream_timeout_ms
                    .unwrap_or(DEFAULT_UPSTREAM_TIMEOUT_MS);
                Some(Upstream {
                    url,
                    timeout: Duration::from_millis(ms),
                })
            }
            None if file.upstream_timeout_ms.is_some() => {
                return Err(format!(
                    "rule for {:?} has upstream_timeout_ms but no upstream",
                    file.channel
                ));
            }
            None => None,
        };
        Ok(Rule {
            pattern,
            claim_equals: file.claim_equals,
            claim_contains: file.claim_contains,
            user_info_claims: file.user_info_claims,
            upstream,
        })
    }
}

/// What the rules say about one channel for one set of claims.
#[derive(Debug)]
pub enum Verdict<'a> {
    Allow(&'a Rule),
    /// The conditions hold; the rule's upstream decides (with the placeholders' values).
    Delegate(&'a Rule, &'a Upstream, Captures),
    /// Refused, with the reason shown to the client.
    Deny(String),
}

/// Applies the first rule matching `channel` to `claims`.
pub fn decide<'a>(rules: &'a [Rule], channel: &str, claims: &Map<String, Value>) -> Verdict<'a> {
    let Some((rule, captures)) = rules
        .iter()
        .find_map(|r| r.pattern.captures(channel).map(|c| (r, c)))
    else {
        return Verdict::Deny(format!("No rule allows {channel}"));
    };
    let value_of = |placeholder: &str| {
        captures
            .iter()
            .find(|(name, _)| name == placeholder)
            .map_or("", |(_, v)| v.as_str())
    };
    for (placeholder, claim) in &rule.claim_equals {
        if !claims
            .get(claim)
            .is_some_and(|c| claim_text_is(c, value_of(placeholder)))
        {
            return Verdict::Deny(format!(
                "The token's {claim} claim does not match {{{placeholder}}} of {channel}"
            ));
        }
    }
    for (placeholder, claim) in &rule.claim_contains {
        let listed = claims
            .get(claim)
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(|c| claim_text_is(c, value_of(placeholder))));
        if !listed {
            return Verdict::Deny(format!(
                "The token's {claim} claim does not list {{{placeholder}}} of {channel}"
            ));
        }
    }
    match &rule.upstream {
        Some(upstream) => Verdict::Delegate(rule, upstream, captures),
        None => Verdict::Allow(rule),
    }
}

/// A claim as channel-name text: strings as they are, numbers in decimal; nothing else.
pub fn claim_text(claim: &Value) -> Option<String> {
    match claim {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn claim_text_is(claim: &Value, text: &str) -> bool {
    claim_text(claim).is_some_and(|c| c == text)
}

/// The listed claims the token has, as a `user_info` object.
pub fn user_info(claims: &Map<String, Value>, names: &[String]) -> Map<String, Value> {
    names
        .iter()
        .filter_map(|n| claims.get(n).map(|v| (n.clone(), v.clone())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rules(toml_text: &str) -> Result<Vec<Rule>, String> {
        #[derive(Deserialize)]
        struct File {
            rules: Vec<RuleFile>,
        }
        let file: File = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        file.rules.into_iter().map(Rule::try_from).collect()
    }

    fn claims(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    const RULES: &str = r#"
        [[rules]]
        channel = "private-user.{id}"
        claim_equals = { id = "sub" }
        [[rules]]
        channel = "presence-chat.{room}"
        claim_contains = { room = "rooms" }
        [[rules]]
        channel = "private-news"
        [[rules]]
        channel = "private-orders.{order}"
        claim_equals = { order = "order" }
        upstream = "http://127.0.0.1:9/authorize"
    "#;

    #[test]
    fn placeholder_must_equal_the_claim() {
        let rules = rules(RULES).unwrap();
        let user = claims(json!({"sub": "42"}));
        assert!(matches!(
            decide(&rules, "private-user.42", &user),
            Verdict::Allow(_)
        ));
        assert!(matches!(
            decide(&rules, "private-user.43", &user),
            Verdict::Deny(_)
        ));
        // Numeric claims compare as their decimal text.
        assert!(matches!(
            decide(&rules, "private-user.42", &claims(json!({"sub": 42}))),
            Verdict::Allow(_)
        ));
        assert!(matches!(
            decide(&rules, "private-user.42", &claims(json!({}))),
            Verdict::Deny(_)
        ));
        assert!(matches!(
            decide(&rules, "private-user.42", &claims(json!({"sub": ["42"]}))),
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn placeholder_must_be_in_the_list_claim() {
        let rules = rules(RULES).unwrap();
        let user = claims(json!({"sub": "1", "rooms": ["lobby", 7]}));
        assert!(matches!(
            decide(&rules, "presence-chat.lobby", &user),
            Verdict::Allow(_)
        ));
        assert!(matches!(
            decide(&rules, "presence-chat.7", &user),
            Verdict::Allow(_)
        ));
        assert!(matches!(
            decide(&rules, "presence-chat.kitchen", &user),
            Verdict::Deny(_)
        ));
        let not_a_list = claims(json!({"sub": "1", "rooms": "lobby"}));
        assert!(matches!(
            decide(&rules, "presence-chat.lobby", &not_a_list),
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn no_condition_admits_anyone_authenticated_and_unmatched_channels_are_denied() {
        let rules = rules(RULES).unwrap();
        let user = claims(json!({"sub": "1"}));
        assert!(matches!(
            decide(&rules, "private-news", &user),
            Verdict::Allow(_)
        ));
        match decide(&rules, "private-secrets", &user) {
            Verdict::Deny(reason) => assert!(reason.contains("No rule")),
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    #[test]
    fn upstream_rules_delegate_only_once_their_conditions_hold() {
        let rules = rules(RULES).unwrap();
        let user = claims(json!({"sub": "1", "order": 5}));
        match decide(&rules, "private-orders.5", &user) {
            Verdict::Delegate(_, upstream, captures) => {
                assert_eq!(upstream.url.as_str(), "http://127.0.0.1:9/authorize");
                assert_eq!(
                    upstream.timeout,
                    Duration::from_millis(DEFAULT_UPSTREAM_TIMEOUT_MS)
                );
                assert_eq!(captures, vec![("order".to_string(), "5".to_string())]);
            }
            other => panic!("expected delegation, got {other:?}"),
        }
        assert!(matches!(
            decide(&rules, "private-orders.6", &user),
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let rules = rules(
            "[[rules]]\nchannel = 'private-doc.{id}'\nclaim_equals = { id = 'sub' }\n\
             [[rules]]\nchannel = 'private-doc.{id}'\n",
        )
        .unwrap();
        assert!(matches!(
            decide(&rules, "private-doc.2", &claims(json!({"sub": "1"}))),
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn bad_rules_are_config_errors() {
        let err = rules("[[rules]]\nchannel = 'private-a.{id}'\nclaim_equals = { room = 'sub' }\n")
            .unwrap_err();
        assert!(err.contains("{room}"));
        assert!(
            rules("[[rules]]\nchannel = 'private-a'\nupstream = 'ftp://x'\n")
                .unwrap_err()
                .contains("http")
        );
        assert!(rules("[[rules]]\nchannel = 'private-a'\nupstream_timeout_ms = 5\n").is_err());
        assert!(rules("[[rules]]\nchannel = 'private-a'\nclaims_equal = {}\n").is_err());
    }

    #[test]
    fn user_info_copies_the_listed_claims_present() {
        let token = claims(json!({"sub": "1", "name": "Ana", "email": "a@x"}));
        let info = user_info(&token, &["name".into(), "avatar".into()]);
        assert_eq!(Value::Object(info), json!({"name": "Ana"}));
    }
}
