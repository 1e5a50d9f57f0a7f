//! `nodewarden drain` / `nodewarden undrain`: an operator's drain of this container instance.
//! A drain made here is recorded as the operator's, so the daemon never undoes it; `undrain`
//! returns the instance to ACTIVE whoever drained it, and clears the record and the tags.

use std::time::{Duration, SystemTime};

use super::{Context, exit, inputs};
use crate::drain::DrainReason;
use crate::drain::record::{self, DrainRecord};

pub fn run(context: &Context, draining: bool) -> u8 {
    let (loaded, environment) = match inputs::settings_and_environment(context) {
        Ok(both) => both,
        Err(error) => return super::fail_on(&error),
    };
    let result = super::runtime().block_on(async {
        let (api, identity) = inputs::ecs_identity(&loaded.settings, &environment, Duration::from_secs(20))
            .await
            .map_err(|e| crate::error::chain(&e))?;
        api.set_status(&identity, draining).await.map_err(|e| e.to_string())?;
        if !draining {
            // A disk-pressure drain held a slot in the cluster's budget: give it back.
            let _ = api.delete_attribute(&identity, crate::drain::claims::CLAIM_ATTRIBUTE, None).await;
        }
        let record_path = context.paths.drain_record();
        if draining {
            let since = SystemTime::now();
            let detail = "drained by an operator (nodewarden drain)".to_string();
            let record = DrainRecord {
                reason: DrainReason::Operator,
                detail: detail.clone(),
                since,
                cluster: identity.cluster.clone(),
                container_instance_arn: identity.container_instance_arn.clone(),
                pending: false,
            };
            record::save(&record_path, &record).map_err(|e| e.to_string())?;
            if let Err(error) = api.tag(&identity.ec2_instance_id, &format!("operator: {detail}"), since).await {
                eprintln!("warning: {error}");
            }
        } else {
            record::clear(&record_path).map_err(|e| e.to_string())?;
            if let Err(error) = api.untag(&identity.ec2_instance_id).await {
                eprintln!("warning: {error}");
            }
        }
        Ok::<_, String>(identity)
    });
    match result {
        Ok(identity) => {
            let status =
                if draining { "DRAINING (an operator's drain: nodewarden will not undo it)" } else { "ACTIVE" };
            println!("{} is now {status}", identity.container_instance_arn);
            exit::OK
        }
        Err(message) => super::fail(&message),
    }
}
