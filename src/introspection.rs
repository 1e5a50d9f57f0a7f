//! The ECS agent's introspection API (`/v1/metadata` on 51678): who the agent registered as.
//! It answers only after the agent registered with ECS.

use std::time::Duration;

use hyper::{StatusCode, Uri};
use serde::Deserialize;

use crate::http::{self, HttpClient};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct AgentMetadata {
    #[serde(rename = "Cluster")]
    pub cluster: String,
    #[serde(rename = "ContainerInstanceArn", default)]
    pub container_instance_arn: Option<String>,
    #[serde(rename = "Version", default)]
    pub version: Option<String>,
}

/// GETs `/v1/metadata` from the agent at `base`.
pub async fn fetch_metadata(http: &HttpClient, base: &Uri, timeout: Duration) -> Result<AgentMetadata, String> {
    let uri = http::join(base, "/v1/metadata")?;
    let response = http.get(uri.clone(), &[], timeout).await.map_err(|e| e.to_string())?;
    if response.status != StatusCode::OK {
        return Err(format!("GET {uri}: HTTP {}", response.status));
    }
    serde_json::from_slice(&response.body).map_err(|e| format!("GET {uri}: unexpected answer: {e}"))
}
