//! The raw values after layering (defaults, then the file, then the environment), and the
//! parsing of one value with an error that names its key, its source and what was expected.

use super::*;

/// Raw string values by file key, with their source, after layering.
pub(super) struct Layers {
    values: BTreeMap<&'static str, (String, Source)>,
}

impl Layers {
    /// The raw values of the file (checked to be known keys and scalars), then the
    /// environment over them.
    pub(super) fn from_sources(
        file: Option<(&Path, &str)>,
        env: &BTreeMap<String, String>,
    ) -> Result<Layers, ConfigError> {
        let mut values = BTreeMap::new();
        if let Some((path, text)) = file {
            let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::File {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
            for (name, value) in table {
                let Some(key) = KEYS.iter().find(|k| k.file == name) else {
                    return Err(ConfigError::UnknownKey {
                        path: path.to_path_buf(),
                        known: KEYS.iter().map(|k| k.file).collect::<Vec<_>>().join(", "),
                        key: name,
                    });
                };
                let raw = match value {
                    toml::Value::String(s) => s,
                    toml::Value::Integer(i) => i.to_string(),
                    // Each key's own parser judges the value (`demo = false`,
                    // `sandbox_time_scale = 0.001`).
                    toml::Value::Float(f) => f.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    _ => {
                        return Err(ConfigError::NotScalar {
                            path: path.to_path_buf(),
                            key: name,
                        })
                    }
                };
                values.insert(key.file, (raw, Source::File(path.to_path_buf())));
            }
        }
        for key in KEYS {
            if let Some(v) = env.get(key.env) {
                values.insert(key.file, (v.clone(), Source::Env(key.env)));
            }
        }
        Ok(Layers { values })
    }

    /// The settings of one provider: `None` when none of `required` is set, all of them when
    /// all are, and an error naming the first missing one otherwise.
    pub(super) fn provider(
        &self,
        provider: &'static str,
        required: &[&'static str],
    ) -> Result<Option<Vec<String>>, ConfigError> {
        let values: Vec<Option<&String>> = required
            .iter()
            .map(|k| self.get(k).map(|(v, _)| v).filter(|v| !v.trim().is_empty()))
            .collect();
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        if let Some(i) = values.iter().position(Option::is_none) {
            return Err(ConfigError::Incomplete {
                provider,
                missing: key_named(required[i]).env,
                required: required
                    .iter()
                    .map(|k| key_named(k).env)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(Some(
            values
                .into_iter()
                .flatten()
                .map(|v| v.trim().to_string())
                .collect(),
        ))
    }

    pub(super) fn get(&self, file_key: &str) -> Option<&(String, Source)> {
        self.values.get(file_key)
    }

    pub(super) fn parse<T>(
        &self,
        file_key: &'static str,
        expected: &'static str,
        default: impl FnOnce() -> T,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ConfigError> {
        let Some((raw, source)) = self.get(file_key) else {
            return Ok(default());
        };
        let key = key_named(file_key);
        parse(raw.trim()).ok_or_else(|| {
            if key.secret {
                ConfigError::InvalidSecret {
                    key: key.env,
                    origin: source.clone(),
                    expected,
                }
            } else {
                ConfigError::Invalid {
                    key: key.env,
                    origin: source.clone(),
                    expected,
                    value: raw.clone(),
                }
            }
        })
    }
}

pub(super) fn key_named(file_key: &str) -> &'static Key {
    KEYS.iter()
        .find(|k| k.file == file_key)
        .unwrap_or_else(|| unreachable!("every parsed key is listed in KEYS: {file_key}"))
}
