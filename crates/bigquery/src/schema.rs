use serde_json::{Value, json};

/// One column, owned: built from epc-model's static specs or from the
/// warehouse interface's records alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// BigQuery's type name: STRING, DATE, TIMESTAMP, JSON, INT64, …
    pub data_type: String,
    pub required: bool,
    pub description: String,
}

/// A table as dame creates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub fields: Vec<Field>,
    /// A DATE column to partition by month.
    pub partition_by_month: Option<String>,
    pub cluster_by: Vec<String>,
    pub description: String,
}

impl From<&epc_model::warehouse::TableSpec> for Table {
    fn from(s: &epc_model::warehouse::TableSpec) -> Self {
        Table {
            name: s.name.clone(),
            fields: s
                .columns
                .iter()
                .map(|c| Field {
                    name: c.name.to_string(),
                    data_type: c.data_type.to_string(),
                    required: c.required,
                    description: c.description.to_string(),
                })
                .collect(),
            partition_by_month: s.partition_by_month.as_ref().map(|p| p.to_string()),
            cluster_by: s.cluster_by.iter().map(|c| c.to_string()).collect(),
            description: s.description.clone(),
        }
    }
}

impl Table {
    /// Checks every name that will reach a URL or SQL.
    pub fn check(&self) -> Result<(), epc_model::InputError> {
        epc_model::warehouse::check_table(&self.name)?;
        for f in &self.fields {
            check_column(&f.name)?;
            let known = ["STRING", "BYTES", "INT64", "INTEGER", "FLOAT64", "FLOAT", "NUMERIC", "BIGNUMERIC", "BOOL",
                "BOOLEAN", "TIMESTAMP", "DATE", "TIME", "DATETIME", "GEOGRAPHY", "JSON"];
            if !known.contains(&f.data_type.as_str()) {
                return Err(epc_model::InputError(format!(
                    "column {} of table {}: type '{}' is not a BigQuery column type",
                    f.name, self.name, f.data_type
                )));
            }
        }
        for c in self.partition_by_month.iter().chain(&self.cluster_by) {
            if !self.fields.iter().any(|f| &f.name == c) {
                return Err(epc_model::InputError(format!(
                    "table {}: partitioning or clustering column '{c}' is not one of its columns",
                    self.name
                )));
            }
        }
        if self.cluster_by.len() > 4 {
            return Err(epc_model::InputError(format!("table {}: BigQuery clusters by at most 4 columns", self.name)));
        }
        Ok(())
    }

    /// The `schema` object of the REST API.
    pub fn schema_json(&self) -> Value {
        schema_json(&self.fields)
    }
}

pub(crate) fn schema_json(fields: &[Field]) -> Value {
    let fields: Vec<Value> = fields
        .iter()
        .map(|f| {
            json!({
                "name": f.name,
                "type": f.data_type,
                "mode": if f.required { "REQUIRED" } else { "NULLABLE" },
                "description": f.description,
            })
        })
        .collect();
    json!({ "fields": fields })
}

/// Column names: BigQuery's rule (letters, digits, underscores, not
/// starting with a digit), which also keeps them safe in SQL.
pub fn check_column(c: &str) -> Result<(), epc_model::InputError> {
    let ok = !c.is_empty()
        && c.len() <= 300
        && !c.starts_with(|ch: char| ch.is_ascii_digit())
        && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_');
    if ok {
        Ok(())
    } else {
        Err(epc_model::InputError(format!("column '{c}' is not valid: letters, digits and underscores only")))
    }
}
