//! What wbstack's tests and benches share, in one crate instead of modules included by path:
//! the emulated cluster and the test bed ([`Env`]), moto with the proxies that answer what it
//! lacks ([`moto`]), real Redis, MariaDB and HTTPS servers ([`servers`]), Python tools in virtual
//! environments ([`python`]), and the command helpers that assert an exit status themselves and
//! name the caller when it is not the one expected ([`run`]).

pub mod bench;
pub mod emulator;
mod env;
pub mod moto;
pub mod paths;
pub mod python;
pub mod run;
pub mod servers;
pub mod testbed;

pub use env::{Back, Env, LICENSE, WBSTACK_IMAGE};
pub use run::{expect_code, last_json, ok, step_report, text, Exited};
