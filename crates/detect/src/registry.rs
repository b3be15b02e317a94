//! The detectors, listed explicitly: adding one is a file, a config field and a line here.

use super::brute_force::{BruteForce, BruteForceConfig};
use super::cloud_anomaly::{CloudAnomaly, CloudAnomalyConfig};
use super::data_exfiltration::{DataExfiltration, DataExfiltrationConfig};
use super::distributed_brute_force::{DistributedBruteForce, DistributedBruteForceConfig};
use super::domain_anomaly::{DomainAnomaly, DomainAnomalyConfig};
use super::geo_anomaly::{GeoAnomaly, GeoAnomalyConfig};
use super::harmful_application::{HarmfulApplication, HarmfulApplicationConfig};
use super::impossible_travel::{ImpossibleTravel, ImpossibleTravelConfig};
use super::password_spray::{PasswordSpray, PasswordSprayConfig};
use super::principal_anomaly::{PrincipalAnomaly, PrincipalAnomalyConfig};
use super::privilege_escalation::{PrivilegeEscalation, PrivilegeEscalationConfig};
use super::probe::{Probe, ProbeConfig};
use super::sql_injection::{SqlInjection, SqlInjectionConfig};
use super::statement::StatementEvidence;
use super::suspicious_ip::{SuspiciousIp, SuspiciousIpConfig};
use super::unsafe_action::{UnsafeAction, UnsafeActionConfig};
use super::Detector;
use model::duration::Span;
use serde::{Deserialize, Serialize};

/// `[detect]`: every detector's settings, each in its own table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// An alert stays open (and is updated rather than raised again) while its findings keep
    /// coming within this period.
    pub quiet_period: Span,
    /// Access-anomaly alerts on login attempts (a failed login from a Tor exit or a
    /// blocklisted address) per server and hour at most; more are rolled up into one alert
    /// per type that counts them and lists their sources. Anomalies on successful logins are
    /// never held back.
    pub max_anomalies_per_hour: u32,
    pub brute_force: BruteForceConfig,
    pub password_spray: PasswordSprayConfig,
    pub distributed_brute_force: DistributedBruteForceConfig,
    pub harmful_application: HarmfulApplicationConfig,
    pub probe: ProbeConfig,
    pub suspicious_ip: SuspiciousIpConfig,
    pub geo_anomaly: GeoAnomalyConfig,
    pub cloud_anomaly: CloudAnomalyConfig,
    pub principal_anomaly: PrincipalAnomalyConfig,
    pub domain_anomaly: DomainAnomalyConfig,
    pub impossible_travel: ImpossibleTravelConfig,
    /// How statement-level alerts show statements: `redacted` (literals as `?`) or `full`.
    pub statement_evidence: StatementEvidence,
    pub sql_injection: SqlInjectionConfig,
    pub unsafe_action: UnsafeActionConfig,
    pub privilege_escalation: PrivilegeEscalationConfig,
    pub data_exfiltration: DataExfiltrationConfig,
    /// Learning period, look-back and caps of the per-server profile.
    pub profile: crate::profile::ProfileConfig,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            quiet_period: Span::mins(60),
            max_anomalies_per_hour: 20,
            brute_force: BruteForceConfig::default(),
            password_spray: PasswordSprayConfig::default(),
            distributed_brute_force: DistributedBruteForceConfig::default(),
            harmful_application: HarmfulApplicationConfig::default(),
            probe: ProbeConfig::default(),
            suspicious_ip: SuspiciousIpConfig::default(),
            geo_anomaly: GeoAnomalyConfig::default(),
            cloud_anomaly: CloudAnomalyConfig::default(),
            principal_anomaly: PrincipalAnomalyConfig::default(),
            domain_anomaly: DomainAnomalyConfig::default(),
            impossible_travel: ImpossibleTravelConfig::default(),
            statement_evidence: StatementEvidence::Redacted,
            sql_injection: SqlInjectionConfig::default(),
            unsafe_action: UnsafeActionConfig::default(),
            privilege_escalation: PrivilegeEscalationConfig::default(),
            data_exfiltration: DataExfiltrationConfig::default(),
            profile: crate::profile::ProfileConfig::default(),
        }
    }
}

impl DetectConfig {
    /// Checks values that parse but cannot work.
    pub fn validate(&self) -> Result<(), model::setting::SettingError> {
        let min = Span(super::window::HEARTBEAT_MS + 5 * 60_000);
        if self.quiet_period < min {
            return Err(model::setting::SettingError::new(
                "detect.quiet_period",
                format!(
                    "detect.quiet_period = \"{}\" is too short: ongoing attacks are reported every 10m, so it must be at least {min}",
                    self.quiet_period
                ),
            ));
        }
        self.privilege_escalation.windows()?;
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
        Box::new(SuspiciousIp::new(c.suspicious_ip.clone())),
        Box::new(ImpossibleTravel::new(c.impossible_travel.clone())),
        Box::new(CloudAnomaly::new(c.cloud_anomaly.clone())),
        Box::new(GeoAnomaly::new(c.geo_anomaly.clone())),
        Box::new(PrincipalAnomaly::new(c.principal_anomaly.clone())),
        Box::new(DomainAnomaly::new(c.domain_anomaly.clone())),
        Box::new(SqlInjection::new(
            c.sql_injection.clone(),
            c.statement_evidence,
        )),
        Box::new(UnsafeAction::new(
            c.unsafe_action.clone(),
            c.statement_evidence,
        )),
        Box::new(PrivilegeEscalation::new(
            c.privilege_escalation.clone(),
            c.statement_evidence,
        )),
        Box::new(DataExfiltration::new(
            c.data_exfiltration.clone(),
            c.statement_evidence,
        )),
    ]
}
