//! sluice-store-postgres
