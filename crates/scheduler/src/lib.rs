//! sluice-scheduler
