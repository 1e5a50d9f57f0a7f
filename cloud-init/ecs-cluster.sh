#!/bin/bash
# Classic ECS userdata: the cluster in /etc/ecs/ecs.config. ecs-init reads it, and so does
# nodewarden (no settings needed on the ECS-optimized AMI). cloud-init runs this script late
# in boot, after nodewarden-setup and before ecs.service and nodewarden.service.
mkdir -p /etc/ecs
echo ECS_CLUSTER=${ClusterName} >> /etc/ecs/ecs.config
