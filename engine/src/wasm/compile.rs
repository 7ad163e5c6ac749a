//! Turning module bytes into a `Component`: the compile cache (in memory and
//! on disk) and the import check that keeps capabilities out of a policy.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiled components kept in memory (a reload of recent bytes, e.g. a
/// rollback, skips compilation). Oldest entries are evicted first.
const MEMORY_CACHE_ENTRIES: usize = 64;

/// The sha256 of a module's bytes: its version identity.
pub(crate) type ContentHash = [u8; 32];

pub(crate) fn content_hash(bytes: &[u8]) -> ContentHash {
    Sha256::digest(bytes).into()
}

pub(crate) fn hex(hash: &ContentHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a load found its compiled component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompiledFrom {
    /// Compiled by cranelift now (tens of milliseconds per 100 KB).
    Compiler,
    /// The in-memory cache: the same bytes were loaded before.
    Memory,
    /// A `.cwasm` in `cache_dir`, written by an earlier run.
    Disk,
}

pub(crate) struct CompileCache {
    memory: Mutex<MemoryCache>,
    dir: Option<PathBuf>,
    /// Engine settings and wasmtime version, as hex: part of each `.cwasm`
    /// file name so a file is only ever read by an engine that can run it.
    fingerprint: String,
}

#[derive(Default)]
struct MemoryCache {
    entries: HashMap<ContentHash, (Component, u64)>,
    next_seq: u64,
}

impl CompileCache {
    pub fn new(engine: &Engine, dir: Option<PathBuf>) -> Self {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            memory: Mutex::new(MemoryCache::default()),
            dir,
            fingerprint: format!("{:016x}", hasher.finish()),
        }
    }

    /// The component for `bytes`, from a cache or freshly compiled (and then
    /// cached). CPU-bound: call it off the async runtime.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        hash: &ContentHash,
        bytes: &[u8],
    ) -> wasmtime::Result<(Component, CompiledFrom)> {
        if let Some((component, _)) = self.memory.lock().entries.get(hash) {
            return Ok((component.clone(), CompiledFrom::Memory));
        }
        let file = self.dir.as_deref().map(|dir| self.file_name(dir, hash));
        if let Some(file) = &file
            && let Some(component) = read_precompiled(engine, file)
        {
            self.remember(hash, &component);
            return Ok((component, CompiledFrom::Disk));
        }
        let component = Component::new(engine, bytes)?;
        if let Some(file) = &file {
            write_precompiled(&component, file);
        }
        self.remember(hash, &component);
        Ok((component, CompiledFrom::Compiler))
    }

    fn file_name(&self, dir: &Path, hash: &ContentHash) -> PathBuf {
        dir.join(format!("{}-{}.cwasm", hex(hash), self.fingerprint))
    }

    fn remember(&self, hash: &ContentHash, component: &Component) {
        let mut cache = self.memory.lock();
        if cache.entries.len() >= MEMORY_CACHE_ENTRIES {
            let oldest = cache
                .entries
                .iter()
                .min_by_key(|(_, (_, seq))| *seq)
                .map(|(h, _)| *h);
            if let Some(oldest) = oldest {
                cache.entries.remove(&oldest);
            }
        }
        let seq = cache.next_seq;
        cache.next_seq += 1;
        cache.entries.insert(*hash, (component.clone(), seq));
    }
}

/// A `Hasher` over sha256, so the fingerprint does not depend on std's
/// unspecified `DefaultHasher` (a file written by one build of the node stays
/// findable by the next build with the same wasmtime and settings).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_be_bytes(digest[..8].try_into().unwrap_or_default())
    }
}

fn read_precompiled(engine: &Engine, file: &Path) -> Option<Component> {
    if !file.exists() {
        return None;
    }
    // SAFETY: `deserialize_file` maps the file and runs its code natively,
    // so it must be a `.cwasm` this engine wrote. It is: files in the cache
    // directory are only created by `write_precompiled` below (atomically,
    // so never half-written), named by the source's sha256 and by this
    // engine's compatibility fingerprint, and wasmtime additionally refuses
    // a file whose header does not match the engine's version and settings.
    // The operator keeps the directory writable by the proxy only (see
    // `EngineConfig::cache_dir`), as they do for the proxy binary itself.
    match unsafe { Component::deserialize_file(engine, file) } {
        Ok(component) => Some(component),
        Err(error) => {
            tracing::warn!(file = %file.display(), %error, "ignoring unusable precompiled policy; recompiling");
            None
        }
    }
}

/// Writes via a temporary file and a rename, so a reader (another node
/// process sharing the directory, or a restart after a crash) never sees a
/// partial file. A failure only costs a recompilation later.
fn write_precompiled(component: &Component, file: &Path) {
    let result = component
        .serialize()
        .map_err(|e| e.to_string())
        .and_then(|bytes| {
            // Unique per writer: two loads of the same bytes may race here.
            let tmp = file.with_extension(format!(
                "{}.{:016x}.tmp",
                std::process::id(),
                rand::random::<u64>()
            ));
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, file))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    e.to_string()
                })
        });
    if let Err(error) = result {
        tracing::warn!(file = %file.display(), %error, "cannot write precompiled policy to the cache directory");
    }
}

/// Import namespaces Rust's std pulls in for `wasm32-wasip2` even when a
/// policy never uses them. They are linked to functions that trap, except
/// `wasi:random`, which is provided (std's `HashMap` seeds from it).
const TOLERATED_WASI: [&str; 5] = [
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:random/",
];

/// Interfaces of our package a policy may import (world `policy`).
const OUR_INTERFACES: [&str; 8] = [
    "types", "log", "metrics", "clock", "kv", "location", "caller", "calls",
];
const OUR_PACKAGE: &str = "switchyard:policy/";
/// Versions of our package this host implements (0.1.2, which runs 0.1.0
/// and 0.1.1 components unchanged).
const OUR_VERSION_PREFIX: &str = "@0.1.";

/// Defines every function of the component's tolerated WASI imports
/// (checked by [`check_imports`]) as one that traps, and their resources
/// as plain host resources. Only those: our own interfaces must stay
/// unstubbed, so an import of an older compatible version
/// (`switchyard:policy/log@0.1.0`) resolves to this host's 0.1.x by the
/// linker's semver matching, which an exact-name stub would shadow (as
/// `Linker::define_unknown_imports_as_traps` does).
pub(crate) fn stub_tolerated_wasi<T: 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    engine: &Engine,
    component: &Component,
) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;

    fn stub<T: 'static>(
        linker: &mut wasmtime::component::LinkerInstance<'_, T>,
        engine: &Engine,
        name: &str,
        item: &ComponentItem,
        path: &str,
    ) -> wasmtime::Result<()> {
        match item {
            ComponentItem::ComponentFunc(_) => {
                let qualified = format!("{path}#{name}");
                linker.func_new(name, move |_, _, _, _| {
                    wasmtime::bail!("{qualified} is not available to policies")
                })
            }
            ComponentItem::Resource(_) => linker.resource(
                name,
                wasmtime::component::ResourceType::host::<()>(),
                |_, _| Ok(()),
            ),
            ComponentItem::ComponentInstance(instance) => {
                let mut inner = linker.instance(name)?;
                for (export, item) in instance.exports(engine) {
                    stub(&mut inner, engine, export, &item.ty, name)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    let ty = component.component_type();
    for (name, item) in ty.imports(engine) {
        // `wasi:random` is provided by the engine's linker, not stubbed.
        let trapped = TOLERATED_WASI
            .iter()
            .filter(|prefix| **prefix != "wasi:random/")
            .any(|prefix| name.starts_with(prefix));
        if trapped {
            stub(&mut linker.root(), engine, name, &item.ty, "")?;
        }
    }
    Ok(())
}

/// Why an import is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ForbiddenImport {
    pub import: String,
    pub why: &'static str,
}

/// Refuses a component importing anything but our interfaces and the
/// tolerated WASI namespaces: deny by default, so a policy cannot get a
/// socket or a file even if a future linker happened to provide one.
pub(crate) fn check_imports(engine: &Engine, component: &Component) -> Result<(), ForbiddenImport> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        if let Some(rest) = name.strip_prefix(OUR_PACKAGE) {
            let (interface, version) = rest.split_once('@').map_or((rest, ""), |(i, v)| (i, v));
            if !OUR_INTERFACES.contains(&interface) {
                return Err(ForbiddenImport {
                    import: name.to_owned(),
                    why: "not an interface of switchyard:policy@0.1.1",
                });
            }
            if !format!("@{version}").starts_with(OUR_VERSION_PREFIX) {
                return Err(ForbiddenImport {
                    import: name.to_owned(),
                    why: "built against another version of switchyard:policy; this host implements 0.1.x",
                });
            }
            continue;
        }
        if TOLERATED_WASI.iter().any(|prefix| name.starts_with(prefix)) {
            continue;
        }
        return Err(ForbiddenImport {
            import: name.to_owned(),
            why: "policies may import only switchyard:policy interfaces (and std's wasi:cli/io/clocks/filesystem/random, which trap)",
        });
    }
    Ok(())
}
