//! Multi-turn records of described datasets ([`super::described`]): sharegpt conversations
//! (LLaMA-Factory's `messages` with `tags`) and alpaca `history`, mapped onto one example that
//! trains on the last assistant turn, the earlier turns rendered as a transcript.

use serde::Deserialize;
use serde_json::Value;

use super::DataError;
use super::described::optional_name;
use super::records::{Record, strings};

/// Keys and role names of sharegpt messages (LLaMA-Factory's `tags`). Unset (or `""`), a
/// message's role is `from` or `role`, its text `value` or `content`, and the roles are
/// `human` or `user`, `gpt` or `assistant`, and `system`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tags {
    /// Key of a message's role.
    #[serde(default, deserialize_with = "optional_name")]
    pub role_tag: Option<String>,
    /// Key of a message's text.
    #[serde(default, deserialize_with = "optional_name")]
    pub content_tag: Option<String>,
    /// Role of user turns.
    #[serde(default, deserialize_with = "optional_name")]
    pub user_tag: Option<String>,
    /// Role of assistant turns.
    #[serde(default, deserialize_with = "optional_name")]
    pub assistant_tag: Option<String>,
    /// Role of a leading system turn.
    #[serde(default, deserialize_with = "optional_name")]
    pub system_tag: Option<String>,
    /// LLaMA-Factory's role of tool results; accepted, but tool turns are not read (a
    /// conversation with one is an error naming the turn).
    #[serde(default, deserialize_with = "optional_name")]
    pub observation_tag: Option<String>,
    /// LLaMA-Factory's role of function calls; see [`Tags::observation_tag`].
    #[serde(default, deserialize_with = "optional_name")]
    pub function_tag: Option<String>,
}

/// `(user, assistant)` turns as `User: …` / `Assistant: …` lines.
pub fn transcript(turns: &[(String, String)]) -> String {
    turns
        .iter()
        .map(|(user, assistant)| format!("User: {user}\nAssistant: {assistant}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Alpaca `history` in field `field` of `record`: a list of `[prompt, response]` pairs (null =
/// none).
///
/// # Errors
/// [`DataError::Field`] naming the record's file, line and field (`field[i]` for a bad pair).
pub fn history(record: Record, field: &str) -> Result<Vec<(String, String)>, DataError> {
    let problem = "expected a list of [prompt, response] pairs of strings";
    let value = match record.value.get(field) {
        None => return Err(record.error(field, "missing", record.value)),
        Some(Value::Null) => return Ok(Vec::new()),
        Some(value) => value,
    };
    let pairs = value
        .as_array()
        .ok_or_else(|| record.error(field, problem, value))?;
    pairs
        .iter()
        .enumerate()
        .map(|(i, pair)| match strings(pair).as_deref() {
            Some([user, assistant]) if pair.is_array() => Ok((user.clone(), assistant.clone())),
            _ => Err(record.error(&format!("{field}[{i}]"), problem, pair)),
        })
        .collect()
}

/// A sharegpt conversation, split as [`super::described::Formatting::Sharegpt`] says.
pub struct Conversation {
    /// A leading system turn's text, or empty.
    pub system: String,
    /// Complete (user, assistant) pairs before the last one.
    pub earlier: Vec<(String, String)>,
    /// The last user turn.
    pub prompt: String,
    /// Where `prompt` is, e.g. `conversations[2].value`.
    pub prompt_field: String,
    /// The last assistant turn.
    pub response: String,
}

/// The conversation in field `field` of `record`, read with `tags`.
///
/// # Errors
/// [`DataError::Field`] naming the record's file, line and the message field at fault: a
/// missing role or text, a role out of turn, no closing assistant turn.
pub fn conversation(record: Record, field: &str, tags: &Tags) -> Result<Conversation, DataError> {
    let names = |given: &Option<String>, defaults: &'static [&'static str]| -> Vec<String> {
        match given {
            Some(name) => vec![name.clone()],
            None => defaults.iter().map(|s| (*s).to_owned()).collect(),
        }
    };
    let role_keys = names(&tags.role_tag, &["from", "role"]);
    let content_keys = names(&tags.content_tag, &["value", "content"]);
    let roles = [
        names(&tags.user_tag, &["human", "user"]),
        names(&tags.assistant_tag, &["gpt", "assistant"]),
    ];
    let system_roles = names(&tags.system_tag, &["system"]);
    let messages = match record.get(field) {
        None => return Err(record.error(field, "missing", record.value)),
        Some(Value::Array(messages)) => messages,
        Some(v) => return Err(record.error(field, "expected a list of messages", v)),
    };
    let mut system = String::new();
    // (message index, content key, text) of each user or assistant turn.
    let mut turns: Vec<(usize, &str, String)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let at = |key: &str| format!("{field}[{i}].{key}");
        fn find<'k>(keys: &'k [String], message: &Value) -> Option<&'k String> {
            keys.iter().find(|k| message.get(k.as_str()).is_some())
        }
        let role_key = find(&role_keys, message)
            .ok_or_else(|| record.error(&at(&role_keys[0]), "missing", message))?;
        let role = message[role_key.as_str()].as_str().ok_or_else(|| {
            record.error(
                &at(role_key),
                "expected a string",
                &message[role_key.as_str()],
            )
        })?;
        let content_key = find(&content_keys, message)
            .ok_or_else(|| record.error(&at(&content_keys[0]), "missing", message))?;
        let content = strings(&message[content_key.as_str()])
            .ok_or_else(|| {
                record.error(
                    &at(content_key),
                    "expected a string or list of strings",
                    &message[content_key.as_str()],
                )
            })?
            .join("\n\n");
        if i == 0 && system_roles.iter().any(|r| r == role) {
            system = content;
            continue;
        }
        let expected = turns.len() % 2;
        if !roles[expected].iter().any(|r| r == role) {
            let problem = if expected == 0 {
                "expected a user turn (turns alternate user, assistant, ...)"
            } else {
                "expected an assistant turn (turns alternate user, assistant, ...)"
            };
            return Err(record.error(&at(role_key), problem, &message[role_key.as_str()]));
        }
        turns.push((i, content_key.as_str(), content));
    }
    match turns.as_slice() {
        [earlier @ .., (at, key, prompt), (_, _, response)] if turns.len().is_multiple_of(2) => {
            Ok(Conversation {
                system,
                earlier: earlier
                    .chunks(2)
                    .map(|pair| (pair[0].2.clone(), pair[1].2.clone()))
                    .collect(),
                prompt: prompt.clone(),
                prompt_field: format!("{field}[{at}].{key}"),
                response: response.clone(),
            })
        }
        _ => Err(record.error(
            field,
            "expected user and assistant turns ending with an assistant turn",
            messages.last().unwrap_or(&Value::Null),
        )),
    }
}
