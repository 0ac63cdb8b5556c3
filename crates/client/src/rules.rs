//! Event rule calls on [`Client`]: create, list, delete, and trace.
//!
//! The broker routes by rules on its own; these calls only manage the rules and follow the
//! `sy-origin` stamps of what they routed.

use switchyard_protocol::{Request, Response, RuleWire, TraceStepWire};

use crate::client::Client;
use crate::error::Result;

impl Client {
    /// Creates an event rule.
    pub async fn create_rule(&self, rule: RuleWire) -> Result<()> {
        self.call_empty(Request::CreateRule { rule }).await
    }

    /// Every rule, sorted by name.
    pub async fn list_rules(&self) -> Result<Vec<RuleWire>> {
        match self.connection().call(Request::ListRules).await? {
            Response::Rules(all) => Ok(all),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Deletes rule `name`; what it routed stays.
    pub async fn delete_rule(&self, name: &str) -> Result<()> {
        self.call_empty(Request::DeleteRule { name: name.into() })
            .await
    }

    /// The records routed from `topic`/`partition`/`offset`, recursively, breadth first.
    pub async fn trace(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<Vec<TraceStepWire>> {
        let request = Request::Trace {
            topic: topic.to_string(),
            partition,
            offset,
        };
        match self.connection().call(request).await? {
            Response::Trace(steps) => Ok(steps),
            other => Err(self.unexpected(&other)),
        }
    }
}
