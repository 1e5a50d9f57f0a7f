//! The agent's image and container through the Docker Engine API.

use std::path::Path;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ImportImageOptionsBuilder, RemoveContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::AsyncReadExt;

use super::AgentError;
use super::spec::{AgentSpec, CONTAINER_NAME, FINGERPRINT_LABEL};

/// `source` as an [`AgentError`] saying what the call was doing.
fn doing(doing: impl Into<String>) -> impl FnOnce(DockerError) -> AgentError {
    move |source| AgentError::Docker { doing: doing.into(), source }
}

fn is_not_found(error: &DockerError) -> bool {
    matches!(error, DockerError::DockerResponseServerError { status_code: 404, .. })
}

/// Makes sure `image` is present: loads `tarball` when it is absent. Never pulls: the image is
/// pinned, and a full disk or no network must not leave the node without an agent.
pub async fn ensure_image(docker: &Docker, image: &str, tarball: &Path) -> Result<(), AgentError> {
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(doing(format!("inspecting image {image}"))(e)),
    }
    load_tarball(docker, tarball).await?;
    docker
        .inspect_image(image)
        .await
        .map(drop)
        .map_err(|_| AgentError::NotInTarball { tarball: tarball.to_path_buf(), image: image.to_string() })
}

/// `docker load` of a tarball, streamed from disk.
pub async fn load_tarball(docker: &Docker, tarball: &Path) -> Result<(), AgentError> {
    let file = tokio::fs::File::open(tarball)
        .await
        .map_err(|source| AgentError::Tarball { tarball: tarball.to_path_buf(), source })?;
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; 1 << 20];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes_of(buffer)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let options = ImportImageOptionsBuilder::default().quiet(true).build();
    let mut progress = docker.import_image_stream(options, chunks, None);
    while let Some(item) = progress.next().await {
        let info = item.map_err(doing(format!("loading {}", tarball.display())))?;
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            return Err(AgentError::Load { tarball: tarball.to_path_buf(), message });
        }
    }
    tracing::info!(tarball = %tarball.display(), "loaded the agent image");
    Ok(())
}

fn bytes_of(buffer: Vec<u8>) -> hyper::body::Bytes {
    hyper::body::Bytes::from(buffer)
}

/// What `ensure_container` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// A container with the same spec already exists (kept, same id).
    Kept(String),
    Created(String),
    /// One with a different spec was removed and a new one created.
    Replaced(String),
}

impl Ensured {
    pub fn id(&self) -> &str {
        match self {
            Ensured::Kept(id) | Ensured::Created(id) | Ensured::Replaced(id) => id,
        }
    }
}

/// Keeps a matching `ecs-agent` container, replaces one whose spec differs, creates one if none.
pub async fn ensure_container(docker: &Docker, spec: &AgentSpec) -> Result<Ensured, AgentError> {
    let existing = match docker.inspect_container(CONTAINER_NAME, None).await {
        Ok(inspect) => Some(inspect),
        Err(e) if is_not_found(&e) => None,
        Err(e) => return Err(doing(format!("inspecting container {CONTAINER_NAME}"))(e)),
    };
    let mut replaced = false;
    if let Some(inspect) = existing {
        let id = inspect.id.clone().unwrap_or_default();
        let labels = inspect.config.as_ref().and_then(|c| c.labels.clone()).unwrap_or_default();
        if labels.get(FINGERPRINT_LABEL) == Some(&spec.fingerprint) {
            return Ok(Ensured::Kept(id));
        }
        tracing::info!(container = %id, "the ecs-agent container's spec changed; replacing it");
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        docker.remove_container(&id, Some(options)).await.map_err(doing("removing the old ecs-agent"))?;
        replaced = true;
    }
    let options = CreateContainerOptionsBuilder::default().name(CONTAINER_NAME).build();
    let created = docker
        .create_container(Some(options), spec.create_body())
        .await
        .map_err(doing(format!("creating the ecs-agent container from {}", spec.image)))?;
    Ok(if replaced { Ensured::Replaced(created.id) } else { Ensured::Created(created.id) })
}

/// Starts the container unless it runs already.
pub async fn ensure_running(docker: &Docker, id: &str) -> Result<(), AgentError> {
    let running = docker
        .inspect_container(id, None)
        .await
        .map_err(doing("inspecting ecs-agent"))?
        .state
        .and_then(|s| s.running)
        .unwrap_or(false);
    if !running {
        docker.start_container(id, None).await.map_err(doing("starting ecs-agent"))?;
    }
    Ok(())
}
