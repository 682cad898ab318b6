//! What a served request looks like to the hooks that watch it ([`Observer`]): the drift
//! monitor, the prediction log, and whatever an embedding program adds. Its own module so that
//! the hooks depend on it and not on the model registry that calls them.

use std::sync::Arc;

use pipeline_core::Predictions;
use pipeline_core::raw::RawInputs;

use crate::Bundle;

/// One served request, as observers see it.
pub struct Observation<'a> {
    /// The model's name.
    pub model: &'a str,
    /// The version that answered.
    pub version: u64,
    /// The raw records of the request.
    pub inputs: &'a RawInputs,
    /// Their predictions (probabilities, or values in target units).
    pub predictions: &'a Predictions,
    /// The model's task (with class labels).
    pub task: &'a pipeline_core::Task,
    /// The client's request id (the V2 `id` field), if it sent one.
    pub request_id: Option<&'a str>,
}

/// A per-request hook of one model version (e.g. a drift monitor). Called on the request's
/// task after the prediction, so it must be quick; heavy work belongs on its own thread.
pub trait Observer: Send + Sync {
    /// Sees one served request.
    fn observe(&self, observation: &Observation<'_>);
}

/// Makes the observer of a model version when it is loaded (`None`: not for this one), given
/// the model's name, the version and its bundle.
pub type ObserverFactory = Arc<dyn Fn(&str, u64, &Bundle) -> Option<Arc<dyn Observer>> + Send + Sync>;
