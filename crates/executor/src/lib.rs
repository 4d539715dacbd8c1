//! sluice-executor
