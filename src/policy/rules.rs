//! Operator rules: what must hold whatever the traffic says.
//!
//! A rule has a [`Selector`] (key prefix, content type, size range; or `all`) and one
//! action: `pin` to a tier (the object is kept there), `floor` (never colder than a
//! tier), `ceiling` (never hotter), `transition` to a tier once N days have passed since
//! the last access or since creation (from then on it is kept there, until an access
//! makes it young again), or `expire` N days after creation (the object is deleted).
//!
//! Placement rules (pin, floor, ceiling, transition) and expire rules are two classes;
//! in each, one rule governs an object: the most specific that selects it. A longer
//! prefix is more specific; at equal prefixes, the rule with more other criteria (content
//! type, least size, largest size); at equal counts, the rule whose id sorts first. The
//! governing placement rule decides alone, also while a transition it names is not due
//! yet: a less specific pin does not apply to an object a more specific transition
//! selects.

use std::cmp::Reverse;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Which objects a rule (or a bulk move) applies to: every criterion given must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    /// Keys starting with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Objects of exactly this content type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Objects of at least this many bytes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wire::optional_whole_number"
    )]
    pub min_size: Option<u64>,
    /// Objects of at most this many bytes.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::wire::optional_whole_number"
    )]
    pub max_size: Option<u64>,
    /// Every object; must be said when no criterion is given, and only then.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

/// What an object is, as far as selectors and rules look.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Subject<'a> {
    /// Its key.
    pub key: &'a str,
    /// Its content type.
    pub content_type: &'a str,
    /// Its size in bytes.
    pub size: u64,
    /// Created at, epoch ms.
    pub created_at: i64,
    /// Last accessed at, epoch ms; `None`: never.
    pub last_access_at: Option<i64>,
}

impl Selector {
    /// Checks it: some criterion or `all`, not both; sizes the catalogue can hold. A size
    /// range with its least above its largest selects nothing.
    pub fn validate(&self) -> Result<(), String> {
        if self.prefix.as_deref() == Some("") {
            return Err(
                "filter.prefix must not be empty; to select every object say \"all\": true".into(),
            );
        }
        if self.content_type.as_deref() == Some("") {
            return Err("filter.content_type must not be empty".into());
        }
        for (name, size) in [("min_size", self.min_size), ("max_size", self.max_size)] {
            if size.is_some_and(|s| s > i64::MAX as u64) {
                return Err(format!("filter.{name} must be at most {}", i64::MAX));
            }
        }
        match (self.all, self.criteria()) {
            (false, 0) => Err(
                "the filter selects every object: give a prefix, content_type, \
                 min_size or max_size, or say \"all\": true"
                    .into(),
            ),
            (true, n) if n > 0 => {
                Err("filter.all is true, yet the filter names criteria too".into())
            }
            _ => Ok(()),
        }
    }

    /// How many criteria besides the prefix it has.
    fn criteria(&self) -> usize {
        usize::from(self.prefix.is_some())
            + usize::from(self.content_type.is_some())
            + usize::from(self.min_size.is_some())
            + usize::from(self.max_size.is_some())
    }

    /// Whether it selects `subject`.
    pub fn selects(&self, subject: &Subject<'_>) -> bool {
        self.prefix
            .as_deref()
            .is_none_or(|p| subject.key.starts_with(p))
            && self
                .content_type
                .as_deref()
                .is_none_or(|t| subject.content_type == t)
            && self.min_size.is_none_or(|m| subject.size >= m)
            && self.max_size.is_none_or(|m| subject.size <= m)
    }

    /// Orders selectors most specific first: longer prefix, then more other criteria.
    fn specificity(&self) -> (usize, usize) {
        let prefix = self.prefix.as_deref().map_or(0, |p| p.chars().count());
        (prefix, self.criteria() - usize::from(self.prefix.is_some()))
    }
}

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Keep the objects on `tier`.
    Pin,
    /// Never colder than `tier`.
    Floor,
    /// Never hotter than `tier`.
    Ceiling,
    /// To `tier` once `after_days` have passed `since` the last access or creation.
    Transition,
    /// Delete `after_days` after creation.
    Expire,
}

impl Action {
    /// Its name in rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pin => "pin",
            Action::Floor => "floor",
            Action::Ceiling => "ceiling",
            Action::Transition => "transition",
            Action::Expire => "expire",
        }
    }
}

/// What `transition` counts its days from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Since {
    /// The last access (creation for an object never accessed).
    #[default]
    LastAccess,
    /// Creation.
    Creation,
}

/// A rule as the API, the CLI and `RULES_FILE` write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Its name: 1 to 64 of `A-Z a-z 0-9 . _ -`. Required in `RULES_FILE`; over the
    /// API the path names the rule, and an id here must be the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Which objects.
    pub filter: Selector,
    /// What to do with them.
    pub action: Action,
    /// The tier, for pin, floor, ceiling and transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Days, for transition and expire (fractions allowed; the day's length is
    /// `RULES_DAY_SECS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_days: Option<f64>,
    /// For transition: count from the last access (default) or from creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Since>,
}

/// A checked rule, its tier resolved to a rank.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Its id.
    pub id: String,
    /// As written.
    pub spec: RuleSpec,
    /// The tier's rank, 0 the hottest.
    tier: Option<usize>,
    /// `after_days` in ms.
    after_ms: Option<i64>,
}

/// Checks a rule id.
pub fn check_id(id: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "rule id {id:?} must be 1 to 64 characters of A-Z a-z 0-9 . _ -"
        ))
    }
}

impl Rule {
    /// Checks `spec` as rule `id` against the tiers (hottest first), with days of
    /// `day_ms`.
    pub fn parse(
        id: &str,
        mut spec: RuleSpec,
        tiers: &[&str],
        day_ms: i64,
    ) -> Result<Rule, String> {
        check_id(id)?;
        if let Some(named) = spec.id.take()
            && named != id
        {
            return Err(format!("the rule's id {named:?} is not {id:?}"));
        }
        spec.filter.validate()?;
        let needs_tier = spec.action != Action::Expire;
        let needs_days = matches!(spec.action, Action::Transition | Action::Expire);
        let action = spec.action.as_str();
        let tier = match (&spec.tier, needs_tier) {
            (Some(name), true) => Some(tiers.iter().position(|t| t == name).ok_or_else(|| {
                format!("unknown tier {name:?}; the tiers are {}", tiers.join(","))
            })?),
            (None, true) => return Err(format!("a {action} rule needs a tier")),
            (Some(_), false) => return Err(format!("a {action} rule takes no tier")),
            (None, false) => None,
        };
        let after_ms = match (spec.after_days, needs_days) {
            (Some(days), true) if days.is_finite() && days >= 0.0 => {
                Some((days * day_ms as f64).min(i64::MAX as f64) as i64)
            }
            (Some(days), true) => {
                return Err(format!("after_days must be 0 or more, not {days}"));
            }
            (None, true) => return Err(format!("a {action} rule needs after_days")),
            (Some(_), false) => return Err(format!("a {action} rule takes no after_days")),
            (None, false) => None,
        };
        if spec.since.is_some() && spec.action != Action::Transition {
            return Err(format!("a {action} rule takes no since"));
        }
        Ok(Rule {
            id: id.to_string(),
            spec,
            tier,
            after_ms,
        })
    }

    /// The document it is stored as.
    pub fn document(&self) -> String {
        serde_json::to_string(&self.spec).unwrap_or_default()
    }

    /// It as the API shows it: the spec with its id.
    pub fn named(&self) -> RuleSpec {
        RuleSpec {
            id: Some(self.id.clone()),
            ..self.spec.clone()
        }
    }

    fn is_placement(&self) -> bool {
        self.spec.action != Action::Expire
    }

    /// When a transition or an expiry of `subject` is due, epoch ms.
    fn due_at(&self, subject: &Subject<'_>) -> i64 {
        let from = match (self.spec.action, self.spec.since.unwrap_or_default()) {
            (Action::Transition, Since::LastAccess) => {
                subject.last_access_at.unwrap_or(subject.created_at)
            }
            _ => subject.created_at,
        };
        from.saturating_add(self.after_ms.unwrap_or_default())
    }
}

/// The tiers an object may be on, by rank: from `hottest` to `coldest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    /// The hottest tier allowed.
    pub hottest: usize,
    /// The coldest tier allowed.
    pub coldest: usize,
}

impl Allowed {
    /// Every tier.
    pub const ANY: Allowed = Allowed {
        hottest: 0,
        coldest: usize::MAX,
    };

    /// Whether tier `rank` is allowed.
    pub fn allows(self, rank: usize) -> bool {
        (self.hottest..=self.coldest).contains(&rank)
    }

    /// The allowed tier nearest `rank`.
    pub fn clamp(self, rank: usize) -> usize {
        rank.clamp(self.hottest, self.coldest)
    }
}

/// Where a placement rule keeps an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The governing rule.
    pub rule_id: String,
    /// The tiers it allows.
    pub allowed: Allowed,
}

/// Every rule, most specific first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// The set of `rules`.
    pub fn new(mut rules: Vec<Rule>) -> RuleSet {
        rules.sort_by(|a, b| {
            Reverse(a.spec.filter.specificity())
                .cmp(&Reverse(b.spec.filter.specificity()))
                .then_with(|| a.id.cmp(&b.id))
        });
        RuleSet { rules }
    }

    /// The rules, most specific first.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rule with this id.
    pub fn get(&self, id: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| r.id == id)
    }

    /// The placement rule governing `subject`.
    pub fn placement_rule(&self, subject: &Subject<'_>) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| r.is_placement() && r.spec.filter.selects(subject))
    }

    /// The tiers `subject` may be on at `now_ms`, with the rule that says so; `None`
    /// when no rule bounds it now.
    pub fn bound(&self, subject: &Subject<'_>, now_ms: i64) -> Option<Bound> {
        let rule = self.placement_rule(subject)?;
        let tier = rule.tier?;
        let allowed = match rule.spec.action {
            Action::Pin => Allowed {
                hottest: tier,
                coldest: tier,
            },
            Action::Floor => Allowed {
                hottest: 0,
                coldest: tier,
            },
            Action::Ceiling => Allowed {
                hottest: tier,
                coldest: usize::MAX,
            },
            Action::Transition if now_ms >= rule.due_at(subject) => Allowed {
                hottest: tier,
                coldest: tier,
            },
            Action::Transition | Action::Expire => return None,
        };
        Some(Bound {
            rule_id: rule.id.clone(),
            allowed,
        })
    }

    /// The expire rule that has `subject` due for deletion at `now_ms`.
    pub fn expiry(&self, subject: &Subject<'_>, now_ms: i64) -> Option<&Rule> {
        self.rules
            .iter()
            .find(|r| !r.is_placement() && r.spec.filter.selects(subject))
            .filter(|r| now_ms >= r.due_at(subject))
    }

    /// The key prefixes that cover every object some rule selects: `None` in the list
    /// stands for every key. No prefix in the list starts with another.
    pub fn prefixes(&self) -> Vec<Option<String>> {
        covering_prefixes(self.rules.iter().map(|r| r.spec.filter.prefix.as_deref()))
    }
}

/// Reads a rules file: a list of rules with their ids, JSON when the name ends in
/// `.json`, YAML otherwise.
pub fn read_rules_file(path: &std::path::Path) -> Result<Vec<RuleSpec>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let parsed = if json {
        serde_json::from_str(&text).map_err(|e| e.to_string())
    } else {
        serde_yaml_ng::from_str(&text).map_err(|e| e.to_string())
    };
    parsed.map_err(|e| format!("{}: {e}", path.display()))
}

/// The fewest prefixes that cover all of `prefixes` (`None`: every key).
pub fn covering_prefixes<'a>(
    prefixes: impl Iterator<Item = Option<&'a str>>,
) -> Vec<Option<String>> {
    let mut all: Vec<Option<&str>> = prefixes.collect();
    if all.iter().any(Option::is_none) {
        return vec![None];
    }
    all.sort();
    let mut kept: Vec<Option<String>> = Vec::new();
    for p in all.into_iter().flatten() {
        if kept
            .last()
            .and_then(Option::as_deref)
            .is_none_or(|k| !p.starts_with(k))
        {
            kept.push(Some(p.to_string()));
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIERS: [&str; 3] = ["onprem", "private", "public"];
    const DAY: i64 = 1000;

    fn rule(id: &str, json: serde_json::Value) -> Result<Rule, String> {
        let spec: RuleSpec = serde_json::from_value(json).map_err(|e| e.to_string())?;
        Rule::parse(id, spec, &TIERS, DAY)
    }

    fn subject(key: &str) -> Subject<'_> {
        Subject {
            key,
            content_type: "text/plain",
            size: 100,
            created_at: 0,
            last_access_at: None,
        }
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        let cases = [
            (
                serde_json::json!({"filter": {"prefix": "a/"}, "action": "pin", "tier": "tape"}),
                "unknown tier",
            ),
            (
                serde_json::json!({"filter": {}, "action": "expire", "after_days": 7}),
                "selects every object",
            ),
            (
                serde_json::json!({"filter": {"prefix": ""}, "action": "expire", "after_days": 7}),
                "must not be empty",
            ),
            (
                serde_json::json!({"filter": {"all": true, "prefix": "a"}, "action": "expire", "after_days": 7}),
                "names criteria too",
            ),
            (
                serde_json::json!({"filter": {"prefix": "a/"}, "action": "expire", "after_days": -1}),
                "0 or more",
            ),
            (
                serde_json::json!({"filter": {"prefix": "a/"}, "action": "transition", "tier": "public"}),
                "needs after_days",
            ),
            (
                serde_json::json!({"filter": {"prefix": "a/"}, "action": "pin"}),
                "needs a tier",
            ),
            (
                serde_json::json!({"filter": {"prefix": "a/"}, "action": "expire", "tier": "public", "after_days": 1}),
                "takes no tier",
            ),
            (
                serde_json::json!({"filter": {"prefix": "a/"}, "action": "pin", "tier": "public", "since": "creation"}),
                "takes no since",
            ),
            (
                serde_json::json!({"filter": {"max_size": 9_223_372_036_854_775_808u64}, "action": "pin", "tier": "public"}),
                "at most",
            ),
            (
                serde_json::json!({"filter": {"prefix": "a/"}, "action": "archive", "tier": "public"}),
                "unknown variant",
            ),
            (
                serde_json::json!({"filter": {"prefix": "a/", "tag": "x"}, "action": "pin", "tier": "public"}),
                "unknown field",
            ),
        ];
        for (json, why) in cases {
            let err = rule("r", json.clone()).unwrap_err();
            assert!(err.contains(why), "{json}: {err}");
        }
        assert!(
            rule(
                "bad id",
                serde_json::json!({"filter": {"all": true}, "action": "pin", "tier": "public"})
            )
            .unwrap_err()
            .contains("rule id")
        );
    }

    #[test]
    fn sizes_take_whole_numbers_as_json_writes_them_and_an_empty_range_selects_nothing() {
        let r = rule("r", serde_json::json!({"filter": {"min_size": 10.0, "max_size": 5}, "action": "pin", "tier": "public"}))
            .unwrap();
        assert_eq!(r.spec.filter.min_size, Some(10));
        assert!(!r.spec.filter.selects(&subject("any")));
        assert!(
            rule(
                "r",
                serde_json::json!({"filter": {"min_size": 1.5}, "action": "pin", "tier": "public"})
            )
            .is_err()
        );
    }

    #[test]
    fn the_most_specific_rule_governs() {
        let set = RuleSet::new(vec![
            rule("all-cold", serde_json::json!({"filter": {"all": true}, "action": "ceiling", "tier": "private"})).unwrap(),
            rule("audit", serde_json::json!({"filter": {"prefix": "audit/"}, "action": "pin", "tier": "onprem"})).unwrap(),
            rule("audit-old", serde_json::json!({"filter": {"prefix": "audit/old/"}, "action": "transition", "tier": "public", "after_days": 2})).unwrap(),
            rule("audit-pdf", serde_json::json!({"filter": {"prefix": "audit/", "content_type": "application/pdf"}, "action": "floor", "tier": "private"})).unwrap(),
            rule("b", serde_json::json!({"filter": {"prefix": "x/"}, "action": "pin", "tier": "public"})).unwrap(),
            rule("a", serde_json::json!({"filter": {"prefix": "x/"}, "action": "pin", "tier": "private"})).unwrap(),
        ]);
        let bound = |s: &Subject<'_>, now| set.bound(s, now).map(|b| (b.rule_id, b.allowed));
        assert_eq!(
            bound(&subject("audit/1"), 0),
            Some((
                "audit".into(),
                Allowed {
                    hottest: 0,
                    coldest: 0
                }
            ))
        );
        let pdf = Subject {
            content_type: "application/pdf",
            ..subject("audit/2")
        };
        assert_eq!(
            bound(&pdf, 0),
            Some((
                "audit-pdf".into(),
                Allowed {
                    hottest: 0,
                    coldest: 1
                }
            ))
        );
        // The transition governs audit/old/ alone: free until due, then on public.
        assert_eq!(bound(&subject("audit/old/1"), 1999), None);
        assert_eq!(
            bound(&subject("audit/old/1"), 2000),
            Some((
                "audit-old".into(),
                Allowed {
                    hottest: 2,
                    coldest: 2
                }
            ))
        );
        let read = Subject {
            last_access_at: Some(1500),
            ..subject("audit/old/1")
        };
        assert_eq!(bound(&read, 3000), None, "an access makes it young again");
        assert_eq!(
            bound(&subject("other"), 0),
            Some((
                "all-cold".into(),
                Allowed {
                    hottest: 1,
                    coldest: usize::MAX
                }
            ))
        );
        // Equal filters: the id that sorts first.
        assert_eq!(bound(&subject("x/1"), 0).unwrap().0, "a");
    }

    #[test]
    fn expiry_is_its_own_class_and_due_after_creation() {
        let set = RuleSet::new(vec![
            rule("tmp", serde_json::json!({"filter": {"prefix": "tmp/"}, "action": "expire", "after_days": 7})).unwrap(),
            rule("tmp-keep", serde_json::json!({"filter": {"prefix": "tmp/keep/"}, "action": "expire", "after_days": 70})).unwrap(),
            rule("tmp-pin", serde_json::json!({"filter": {"prefix": "tmp/"}, "action": "pin", "tier": "onprem"})).unwrap(),
        ]);
        let accessed = Subject {
            last_access_at: Some(6999),
            ..subject("tmp/a")
        };
        assert_eq!(set.expiry(&accessed, 6999), None);
        assert_eq!(
            set.expiry(&accessed, 7000).map(|r| r.id.as_str()),
            Some("tmp")
        );
        assert_eq!(set.expiry(&subject("tmp/keep/a"), 7000), None);
        assert!(set.bound(&subject("tmp/a"), 0).is_some(), "pinned too");
    }

    #[test]
    fn rules_files_are_read_as_yaml_or_json() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("rules.yaml");
        std::fs::write(
            &yaml,
            "- id: audit\n  filter: {prefix: audit/}\n  action: pin\n  tier: onprem\n\
             - id: tmp\n  filter:\n    prefix: tmp/\n  action: expire\n  after_days: 7\n",
        )
        .unwrap();
        let rules = read_rules_file(&yaml).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[1].after_days, Some(7.0));
        let json = dir.path().join("rules.json");
        std::fs::write(
            &json,
            r#"[{"id": "a", "filter": {"all": true}, "action": "ceiling", "tier": "private"}]"#,
        )
        .unwrap();
        assert_eq!(read_rules_file(&json).unwrap()[0].action, Action::Ceiling);
        std::fs::write(
            &json,
            r#"[{"id": "a", "filter": {"all": true}, "action": "pin", "tier": 1, "x": 2}]"#,
        )
        .unwrap();
        assert!(read_rules_file(&json).unwrap_err().contains("rules.json"));
        assert!(
            read_rules_file(&dir.path().join("none.yaml"))
                .unwrap_err()
                .contains("cannot read")
        );
    }

    #[test]
    fn prefixes_cover_every_rule_once() {
        let prefixes = |p: &[Option<&str>]| covering_prefixes(p.iter().copied());
        assert_eq!(
            prefixes(&[Some("a/b/"), Some("a/"), Some("c"), Some("a/c")]),
            [Some("a/".to_string()), Some("c".to_string())]
        );
        assert_eq!(prefixes(&[Some("a/"), None]), [None]);
        assert!(prefixes(&[]).is_empty());
    }
}
