/// One certificate as fetched: the fields landing and loading need pulled
/// out once, and the whole record kept as the API gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// GEPBD certificate number or ODC `lmk-key`.
    pub id: String,
    /// `YYYY-MM-DD`.
    pub lodgement_date: String,
    pub uprn: Option<String>,
    pub postcode: Option<String>,
    /// The record as single-line JSON text.
    pub document: String,
}
