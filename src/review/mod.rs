//! Review: what people (and the schedule) do with the ledger's findings after delivery.
//! Reconciliation checks that the ERP still holds what was delivered, as delivered.

pub mod reconcile;
