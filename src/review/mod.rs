//! What a person does with the ledger's findings once a file is decided: fix its rejected
//! documents and send them back.

pub mod corrections;
