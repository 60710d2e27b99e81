//! Reads `spin.toml`, the same manifest Spin runs, so that what `dame`
//! runs on a laptop is what Spin runs in production: the components, their
//! dependencies, variables, allowed hosts and cron triggers.

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
pub struct Manifest {
    pub spin_manifest_version: u32,
    pub application: Application,
    #[serde(default)]
    pub variables: BTreeMap<String, Variable>,
    #[serde(default)]
    pub trigger: Triggers,
    #[serde(default)]
    pub component: BTreeMap<String, ComponentDef>,
    #[serde(skip)]
    pub dir: PathBuf,
    #[serde(skip)]
    pub file: String,
}

#[derive(Debug, Deserialize)]
pub struct Application {
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct Variable {
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct Triggers {
    #[serde(default)]
    pub cron: Vec<CronTrigger>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronTrigger {
    pub component: String,
    pub cron_expression: String,
}

#[derive(Debug, Deserialize)]
pub struct ComponentDef {
    pub source: String,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub dependencies: BTreeMap<String, Dependency>,
    #[serde(default)]
    pub dependencies_inherit_configuration: bool,
    pub build: Option<Build>,
}

#[derive(Debug, Deserialize)]
pub struct Dependency {
    pub path: String,
}

#[derive(Debug, Deserialize)]
pub struct Build {
    pub command: String,
}

/// A component ready to run: its file, its dependencies' files and its
/// resolved variables and allowed hosts.
#[derive(Debug)]
pub struct Resolved {
    pub id: String,
    pub source: PathBuf,
    pub dependencies: Vec<(String, PathBuf)>,
    pub variables: BTreeMap<String, String>,
    pub allowed_outbound_hosts: Vec<String>,
    /// Names of the variables marked secret, to keep out of anything shown.
    pub secrets: Vec<String>,
}

impl Manifest {
    /// The manifest embedded in this binary.
    pub fn embedded() -> Result<Self> {
        Self::parse(crate::components::MANIFEST, Path::new("."), "spin.toml (built in)")
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading manifest {}", path.display()))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &dir, &path.display().to_string())
    }

    pub fn parse(text: &str, dir: &Path, file: &str) -> Result<Self> {
        let mut m: Manifest = toml::from_str(text).map_err(|e| anyhow!("{file}: {e}"))?;
        m.dir = dir.to_path_buf();
        m.file = file.to_string();
        m.check()?;
        Ok(m)
    }

    /// Refuses what Spin would refuse, naming the file and key.
    fn check(&self) -> Result<()> {
        let f = &self.file;
        if self.spin_manifest_version != 2 {
            bail!("{f}: spin_manifest_version must be 2");
        }
        for (name, _) in &self.variables {
            if !valid_variable_name(name) {
                bail!("{f}: variables.{name}: names are lower case letters, digits and underscores, starting with a letter");
            }
        }
        for (i, t) in self.trigger.cron.iter().enumerate() {
            if !self.component.contains_key(&t.component) {
                bail!("{f}: trigger.cron[{i}].component: no component named '{}'", t.component);
            }
            crate::schedule::CronSpec::parse(&t.cron_expression)
                .map_err(|e| anyhow!("{f}: trigger.cron[{i}].cron_expression: {e}"))?;
        }
        for (id, c) in &self.component {
            for (key, template) in &c.variables {
                if !valid_variable_name(key) {
                    bail!("{f}: component.{id}.variables.{key}: not a valid variable name");
                }
                for name in template_names(template).map_err(|e| anyhow!("{f}: component.{id}.variables.{key}: {e}"))? {
                    if !self.variables.contains_key(&name) {
                        bail!("{f}: component.{id}.variables.{key}: refers to undeclared variable '{name}'");
                    }
                }
            }
            for (dep, _) in &c.dependencies {
                if !dep.contains(':') {
                    bail!("{f}: component.{id}.dependencies.\"{dep}\": name an interface, e.g. \"dame:epc/fetch-page\"");
                }
            }
        }
        Ok(())
    }

    /// Resolves component `id` with variable values from `values` (flags),
    /// then `SPIN_VARIABLE_<NAME>`, then the manifest's defaults.
    pub fn resolve(&self, id: &str, values: &BTreeMap<String, String>) -> Result<Resolved> {
        let f = &self.file;
        let c = self.component.get(id).ok_or_else(|| anyhow!("{f}: no component named '{id}'"))?;
        let mut app = BTreeMap::new();
        for (name, v) in &self.variables {
            let env = std::env::var(format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase())).ok();
            let value = values.get(name).cloned().or(env).or_else(|| v.default.clone());
            match value {
                Some(value) => {
                    app.insert(name.clone(), value);
                }
                None if v.required => bail!(
                    "{f}: variable '{name}' is required: set SPIN_VARIABLE_{} (or the matching dame flag)",
                    name.to_ascii_uppercase()
                ),
                None => {}
            }
        }
        let mut variables = BTreeMap::new();
        for (key, template) in &c.variables {
            variables.insert(key.clone(), render(template, &app).map_err(|e| anyhow!("{f}: component.{id}.variables.{key}: {e}"))?);
        }
        let mut hosts = Vec::new();
        for h in &c.allowed_outbound_hosts {
            hosts.push(render(h, &app).map_err(|e| anyhow!("{f}: component.{id}.allowed_outbound_hosts: {e}"))?);
        }
        let dependencies = c.dependencies.iter().map(|(name, d)| (name.clone(), self.dir.join(&d.path))).collect();
        let secrets = self.variables.iter().filter(|(_, v)| v.secret).map(|(k, _)| k.clone()).collect();
        Ok(Resolved {
            id: id.to_string(),
            source: self.dir.join(&c.source),
            dependencies,
            variables,
            allowed_outbound_hosts: hosts,
            secrets,
        })
    }
}

fn valid_variable_name(n: &str) -> bool {
    n.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The variable names a `{{ name }}` template refers to.
fn template_names(t: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("unclosed '{{{{' in \"{t}\""))?;
        names.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    Ok(names)
}

fn render(t: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = t;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("unclosed '{{{{' in \"{t}\""))?;
        let name = after[..end].trim();
        let v = values.get(name).ok_or_else(|| format!("variable '{name}' has no value"))?;
        out.push_str(v);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projects_manifest_is_valid_and_resolves() {
        let m = Manifest::embedded().unwrap();
        assert_eq!(m.application.name, "dame-epc");
        let mut values = BTreeMap::new();
        values.insert("api_url".to_string(), "http://127.0.0.1:9999".to_string());
        let r = m.resolve("pipeline", &values).unwrap();
        assert_eq!(r.variables["api_url"], "http://127.0.0.1:9999");
        assert!(r.allowed_outbound_hosts.contains(&"http://127.0.0.1:9999".to_string()));
        for iface in ["fetch-page", "landing", "load", "views", "recs"] {
            assert!(r.dependencies.iter().any(|(d, _)| d == &format!("dame:epc/{iface}")), "{iface}");
        }
        for (_, path) in &r.dependencies {
            let name = path.file_name().unwrap().to_str().unwrap();
            assert!(crate::components::embedded(name).is_some(), "{name} is not built in");
        }
        assert!(r.secrets.contains(&"epc_token".to_string()));
        assert!(m.trigger.cron.iter().any(|t| t.component == "pipeline"));
    }

    #[test]
    fn mistakes_name_the_file_and_key() {
        let base = "spin_manifest_version = 2\n[application]\nname = \"x\"\n";
        let e = Manifest::parse(&format!("{base}[[trigger.cron]]\ncomponent = \"nope\"\ncron_expression = \"0 0 8 * * *\"\n"), Path::new("."), "m.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("m.toml") && e.contains("trigger.cron[0].component"), "{e}");
        let e = Manifest::parse(&format!("{base}[component.a]\nsource = \"a.wasm\"\n[component.a.variables]\nk = \"{{{{ missing }}}}\"\n"), Path::new("."), "m.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("component.a.variables.k") && e.contains("missing"), "{e}");
        let e = Manifest::parse(&format!("{base}[component.a]\nsource = \"a.wasm\"\n[[trigger.cron]]\ncomponent = \"a\"\ncron_expression = \"every day\"\n"), Path::new("."), "m.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cron_expression"), "{e}");
    }

    #[test]
    fn templates_render() {
        let mut v = BTreeMap::new();
        v.insert("bucket".to_string(), "b1".to_string());
        assert_eq!(render("gs://{{ bucket }}/x", &v).unwrap(), "gs://b1/x");
        assert!(render("{{ nope }}", &v).is_err());
    }
}
