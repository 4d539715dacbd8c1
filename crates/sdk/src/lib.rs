//! sluice-sdk
