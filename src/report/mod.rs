//! What a run tells its user besides the events: the metrics (`stats`), the
//! progress bar and every line evq writes on standard error (`progress`), and
//! the exit status (`status`).

pub mod progress;
pub mod stats;
pub mod status;
