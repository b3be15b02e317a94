//! The detectors, listed explicitly: adding one is a file, a config field and a line here.

use super::brute_force::{BruteForce, BruteForceConfig};
use super::distributed_brute_force::{DistributedBruteForce, DistributedBruteForceConfig};
use super::harmful_application::{HarmfulApplication, HarmfulApplicationConfig};
use super::password_spray::{PasswordSpray, PasswordSprayConfig};
use super::probe::{Probe, ProbeConfig};
use super::Detector;
use crate::duration::Span;
use serde::{Deserialize, Serialize};

/// `[detect]`: every detector's settings, each in its own table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// An alert stays open (and is updated rather than raised again) while its findings keep
    /// coming within this period.
    pub quiet_period: Span,
    pub brute_force: BruteForceConfig,
    pub password_spray: PasswordSprayConfig,
    pub distributed_brute_force: DistributedBruteForceConfig,
    pub harmful_application: HarmfulApplicationConfig,
    pub probe: ProbeConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            quiet_period: Span::mins(60),
            brute_force: BruteForceConfig::default(),
            password_spray: PasswordSprayConfig::default(),
            distributed_brute_force: DistributedBruteForceConfig::default(),
            harmful_application: HarmfulApplicationConfig::default(),
            probe: ProbeConfig::default(),
        }
    }
}

impl DetectConfig {
    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), String> {
        let min = Span(super::window::HEARTBEAT_MS + 5 * 60_000);
        if self.quiet_period < min {
            return Err(format!(
                "detect.quiet_period = \"{}\" is too short: ongoing attacks are reported every 10m, so it must be at least {min}",
                self.quiet_period
            ));
        }
        Ok(())
    }
}

pub fn build(c: &DetectConfig) -> Vec<Box<dyn Detector>> {
    vec![
        Box::new(BruteForce::new(c.brute_force.clone())),
        Box::new(PasswordSpray::new(c.password_spray.clone())),
        Box::new(DistributedBruteForce::new(
            c.distributed_brute_force.clone(),
        )),
        Box::new(HarmfulApplication::new(c.harmful_application.clone())),
        Box::new(Probe::new(c.probe.clone())),
    ]
}
