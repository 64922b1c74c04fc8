//! What `linux.intelRdt` asks for, checked for form before anything touches the host: the
//! closID as a group name, l3CacheSchema and memBwSchema as schemata lines, and the comparison
//! of those lines with an existing group's `schemata` file as the kernel reads it back.

use oci_spec::runtime::{LinuxIntelRdt, Spec};
use serde_json::Value;

use super::{IntelRdtError, Result};

/// Directory names of the resctrl root that are not groups.
const RESERVED: &[&str] = &["info", "mon_groups", "mon_data"];

/// The keys of linux.intelRdt this engine carries out. `enableCmt`/`enableMbm` are how oci-spec
/// 0.9 (de)serializes the flags (its camelCase rename misses the spec's capitals).
const KNOWN_KEYS: &[&str] = &[
    "closID",
    "l3CacheSchema",
    "memBwSchema",
    "enableCMT",
    "enableMBM",
    "enableCmt",
    "enableMbm",
];

/// One schemata line: a resource and its values per domain (cache id), normalized (lower-case
/// hex without leading zeros for cache bitmasks, decimal for bandwidth).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub resource: String,
    pub domains: Vec<(u32, String)>,
}

/// linux.intelRdt, checked for form (not yet against the host: see `Resctrl::check`). Empty
/// strings count as unset, as Go's omitempty writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub clos_id: Option<String>,
    /// The lines of l3CacheSchema, trimmed, joined by '\n'.
    pub l3_cache_schema: Option<String>,
    /// The lines of memBwSchema, trimmed, joined by '\n'.
    pub mem_bw_schema: Option<String>,
    pub enable_cmt: bool,
    pub enable_mbm: bool,
    l3_lines: Vec<Line>,
    mb_lines: Vec<Line>,
}

impl Config {
    /// The spec's linux.intelRdt, or `None` when it has none.
    pub fn from_spec(spec: &Spec) -> Result<Option<Config>> {
        spec.linux()
            .as_ref()
            .and_then(|l| l.intel_rdt().as_ref())
            .map(Config::from_oci)
            .transpose()
    }

    pub fn from_oci(rdt: &LinuxIntelRdt) -> Result<Config> {
        let set = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        let clos_id = set(rdt.clos_id());
        if let Some(c) = &clos_id {
            check_clos_id(c)?;
        }
        let (l3_cache_schema, l3_lines) = parse_field(
            "l3CacheSchema",
            set(rdt.l3_cache_schema()),
            &["L3", "L3CODE", "L3DATA"],
        )?;
        let (mem_bw_schema, mb_lines) =
            parse_field("memBwSchema", set(rdt.mem_bw_schema()), &["MB"])?;
        Ok(Config {
            clos_id,
            l3_cache_schema,
            mem_bw_schema,
            enable_cmt: rdt.enable_cmt().unwrap_or(false),
            enable_mbm: rdt.enable_mbm().unwrap_or(false),
            l3_lines,
            mb_lines,
        })
    }

    pub fn has_schema(&self) -> bool {
        !self.l3_lines.is_empty() || !self.mb_lines.is_empty()
    }

    pub fn monitoring(&self) -> bool {
        self.enable_cmt || self.enable_mbm
    }

    /// What to write to `schemata`: every line, '\n'-terminated (the kernel refuses a write
    /// whose last byte is not a newline); `None` without a schema.
    pub fn schemata(&self) -> Option<String> {
        let text: String = [&self.l3_cache_schema, &self.mem_bw_schema]
            .into_iter()
            .flatten()
            .map(|s| format!("{s}\n"))
            .collect();
        (!text.is_empty()).then_some(text)
    }

    /// (field, resource) of every schema line, for the host check.
    pub(crate) fn resources(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let l3 = self
            .l3_lines
            .iter()
            .map(|l| ("l3CacheSchema", l.resource.as_str()));
        let mb = self
            .mb_lines
            .iter()
            .map(|l| ("memBwSchema", l.resource.as_str()));
        l3.chain(mb)
    }

    pub(crate) fn lines(&self) -> impl Iterator<Item = &Line> {
        self.l3_lines.iter().chain(&self.mb_lines)
    }
}

/// A closID becomes a directory in the resctrl root: one plain name, not one of the root's own
/// directories.
fn check_clos_id(c: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(IntelRdtError::Invalid {
            field: "closID",
            value: c.to_string(),
            reason: reason.to_string(),
        })
    };
    if c == "." || c == ".." || c.contains('/') || c.contains('\n') || c.contains('\0') {
        return bad("must be a plain directory name (no '/', newline or NUL; not \".\" or \"..\")");
    }
    if RESERVED.contains(&c) {
        return bad("names a directory of the resctrl root itself, not a group");
    }
    Ok(())
}

/// Splits a schema field into its lines, each `<resource>:<id>=<value>[;<id>=<value>...]` with a
/// resource from `allowed`; returns the normalized text and the parsed lines.
fn parse_field(
    field: &'static str,
    value: Option<String>,
    allowed: &[&str],
) -> Result<(Option<String>, Vec<Line>)> {
    let Some(value) = value else {
        return Ok((None, Vec::new()));
    };
    let example = if allowed[0] == "MB" {
        "\"MB:0=70;1=50\" (percent, or MBps with mba_MBps)"
    } else {
        "\"L3:0=ff;1=ff\" (cache id = bitmask in hex)"
    };
    let invalid = |reason: String| IntelRdtError::Invalid {
        field,
        value: value.clone(),
        reason,
    };
    let mut lines: Vec<Line> = Vec::new();
    let mut text = Vec::new();
    for raw in value.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let line = parse_line(raw).map_err(|why| {
            invalid(format!(
                "line {raw:?}: {why}; expected a line like {example}"
            ))
        })?;
        if !allowed.contains(&line.resource.as_str()) {
            return Err(invalid(format!(
                "line {raw:?}: {field} takes {} lines only, e.g. {example}",
                allowed.join(":/") + ":"
            )));
        }
        if lines.iter().any(|l| l.resource == line.resource) {
            return Err(invalid(format!("two {}: lines", line.resource)));
        }
        lines.push(line);
        text.push(raw);
    }
    if lines.is_empty() {
        return Err(invalid(format!("no schema line; expected e.g. {example}")));
    }
    Ok((Some(text.join("\n")), lines))
}

/// Bandwidth resources take decimal values, cache resources hex bitmasks.
fn is_decimal(resource: &str) -> bool {
    matches!(resource, "MB" | "SMBA")
}

/// Parses one schemata line (leading spaces, as the kernel aligns names, already trimmed).
pub(crate) fn parse_line(line: &str) -> std::result::Result<Line, String> {
    let (resource, rest) = line
        .split_once(':')
        .ok_or_else(|| "no ':' after the resource name".to_string())?;
    let resource = resource.trim();
    if resource.is_empty()
        || !resource
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!("bad resource name {resource:?}"));
    }
    let mut domains: Vec<(u32, String)> = Vec::new();
    for token in rest.split(';').map(str::trim).filter(|t| !t.is_empty()) {
        let (id, val) = token
            .split_once('=')
            .ok_or_else(|| format!("{token:?} is not <cache id>=<value>"))?;
        let (id, val) = (id.trim(), val.trim());
        let id: u32 = id
            .parse()
            .map_err(|_| format!("cache id {id:?} is not a number"))?;
        let norm = if is_decimal(resource) {
            val.parse::<u64>()
                .map(|v| v.to_string())
                .map_err(|_| format!("{resource} value {val:?} is not a decimal number"))?
        } else {
            let hex = val
                .strip_prefix("0x")
                .or_else(|| val.strip_prefix("0X"))
                .unwrap_or(val);
            u64::from_str_radix(hex, 16)
                .map(|v| format!("{v:x}"))
                .map_err(|_| format!("{resource} bitmask {val:?} is not hexadecimal"))?
        };
        if domains.iter().any(|(d, _)| *d == id) {
            return Err(format!("cache id {id} given twice"));
        }
        domains.push((id, norm));
    }
    if domains.is_empty() {
        return Err("no <cache id>=<value> after the ':'".to_string());
    }
    Ok(Line {
        resource: resource.to_string(),
        domains,
    })
}

/// Why the `existing` schemata (a group's file) do not match `wanted`, or `None` when every
/// domain `wanted` names has the same value there. A schema may name fewer domains than the
/// host has: writing it would change only those. Lines of other resources are not compared.
pub(crate) fn mismatch<'a>(
    existing: &str,
    wanted: impl Iterator<Item = &'a Line>,
) -> Option<String> {
    let have: Vec<Line> = existing
        .lines()
        .filter_map(|l| parse_line(l.trim()).ok())
        .collect();
    for w in wanted {
        let Some(h) = have.iter().find(|h| h.resource == w.resource) else {
            return Some(format!("it has no {} line", w.resource));
        };
        for (id, val) in &w.domains {
            match h.domains.iter().find(|(d, _)| d == id) {
                None => return Some(format!("its {} line has no cache id {id}", w.resource)),
                Some((_, v)) if v != val => {
                    return Some(format!(
                        "{} cache id {id} is {v} there, not {val}",
                        w.resource
                    ))
                }
                Some(_) => {}
            }
        }
    }
    None
}

/// Carries the parts of the raw config.json's linux.intelRdt that oci-spec 0.9 misreads into
/// `spec`: `enableCMT`/`enableMBM` (it only knows `enableCmt`/`enableMbm`), and refuses keys this
/// engine does not carry out (`schemata`, `enableMonitoring` of runtime-spec 1.3) rather than
/// dropping them silently.
pub fn fix_up_spec(raw: &Value, spec: &mut Spec) -> Result<()> {
    let Some(obj) = raw
        .get("linux")
        .and_then(|l| l.get("intelRdt"))
        .and_then(Value::as_object)
    else {
        return Ok(());
    };
    if let Some(key) = obj.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        return Err(IntelRdtError::UnknownKey { key: key.clone() });
    }
    let flag = |key: &'static str| -> Result<Option<bool>> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(IntelRdtError::Invalid {
                field: key,
                value: other.to_string(),
                reason: "must be true or false".into(),
            }),
        }
    };
    let (cmt, mbm) = (flag("enableCMT")?, flag("enableMBM")?);
    if let Some(rdt) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.intel_rdt_mut().as_mut())
    {
        if cmt.is_some() {
            rdt.set_enable_cmt(cmt);
        }
        if mbm.is_some() {
            rdt.set_enable_mbm(mbm);
        }
    }
    Ok(())
}
