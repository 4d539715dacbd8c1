//! sluice-store-sqlite
