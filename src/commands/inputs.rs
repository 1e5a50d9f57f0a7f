//! What the daemon-side commands (run, gc, drain, undrain, status) start from: the settings in
//! force (defaults < settings file < the userdata settings setup saved).

use super::CommandError;
use crate::environment::Environment;
use crate::settings::{self, Loaded, UserdataSource};

/// Assembles the settings in force; problems come back as one printable message.
pub(crate) fn load_settings(context: &super::Context) -> Result<Loaded, CommandError> {
    let assembly =
        super::runtime().block_on(settings::assemble(&context.paths, &context.settings, &UserdataSource::Saved))?;
    assembly.result.map_err(CommandError::Invalid)
}

/// The settings in force and the standard environment.
pub(crate) fn settings_and_environment(context: &super::Context) -> Result<(Loaded, Environment), CommandError> {
    let loaded = load_settings(context)?;
    let environment = Environment::from_process()?;
    Ok((loaded, environment))
}

/// The ECS API and this container instance's identity, for a command that acts on it:
/// the Region from `AWS_REGION` or IMDS, the identity from IMDS and the agent (or ECS).
/// `imds_deadline` bounds each IMDS call with its retries.
pub(crate) async fn ecs_identity(
    settings: &crate::settings::Settings,
    environment: &Environment,
    imds_deadline: std::time::Duration,
) -> Result<(crate::drain::EcsApi, crate::drain::Identity), CommandError> {
    use crate::imds::{ImdsClient, ImdsConfig};
    let imds = ImdsClient::new(
        environment.imds_endpoint.clone(),
        ImdsConfig { deadline: imds_deadline, ..ImdsConfig::default() },
    );
    let proxy = crate::aws::AwsProxy::choose(environment.proxy_in_environment, &settings.ecs.config);
    let (clients, region_unknown) = crate::aws::Clients::resolve(environment, &imds, &proxy).await;
    if let Some(why) = region_unknown {
        return Err(CommandError::Region(why));
    }
    let api = clients.ecs_api();
    let http = crate::http::HttpClient::new();
    let cluster = settings.ecs.cluster.as_str();
    let identity =
        crate::drain::resolve_identity(&api, cluster, &imds, &http, &environment.agent_introspection).await?;
    Ok((api, identity))
}
