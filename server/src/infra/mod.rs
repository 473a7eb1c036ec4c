//! Infrastructure: what every part of ScanPay stands on and none of it is about payments:
//! the database pool and migrations (`db`), the one clock
//! (`clock`), secrets that never print (`secret`), logs and metrics (`telemetry`), the
//! Leptos site options (`site`), fault injection for tests (`failpoints`), address lists
//! (`net`), the client address behind trusted proxies (`client_addr`) and secrets sealed at
//! rest under the operator's master key (`sealed`). It imports nothing
//! of the domain. The configuration is not here: it parses into the domain's own types (an
//! order's expiry bounds, a provider's settings, the sandbox's faults), so it sits above
//! them, beside the start-up that reads it.

pub mod client_addr;
pub mod clock;
pub mod db;
pub mod failpoints;
pub mod net;
pub mod sealed;
pub mod secret;
pub mod site;
pub mod telemetry;
