//! The command line's subcommands, one file each (the binary's modules, not the library's):
//! every one a thin shell over the library.

pub mod analysis;
pub mod sweep;
pub mod train;
