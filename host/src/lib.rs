//! Switchyard host: transports, transactions, proxy core, registrar and location store.

pub mod net;
