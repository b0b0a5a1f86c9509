//! `wasi:filesystem/types` with the output quota: every call goes to wasmtime-wasi's own
//! implementation, and those that change the output tree are charged to the step's
//! [`Ledger`](super::Ledger) first (or settled after, for what they give back).
//!
//! The output tree is told apart by its permissions: the output preopen is the only
//! read-write one, and every descriptor opened under a preopen inherits its permissions,
//! so a read-write descriptor is in the output tree and anything else goes straight
//! through, at the cost of one table look-up.
//!
//! Look-ups of paths and descriptors' metadata are made inline on the guest's thread, with
//! cap-std's sandboxed resolution as wasmtime-wasi's own calls use: the output tree holds
//! only what the guest made through WASI (files, directories, symbolic links), none of
//! which can block a look-up, unlike a FIFO in the input.
//!
//! Most of the file is forwarding: a Rust impl of the bindings' trait lists all thirty
//! methods, and only the eleven that change the output tree do more than pass the call on.

use std::path::Path;
use std::sync::{Arc, MutexGuard};

use cap_primitives::fs::{FollowSymlinks, Metadata, MetadataExt as _};
use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::FsPerms;
use wasmtime_wasi::OpenMode;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, ErrorCode, HostDescriptor, HostDirectoryEntryStream,
};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, FsError, FsResult};

use super::stream::CountedStream;
use super::{Inode, Ledger, OverQuota, Reach, SharedLedger, lock};

/// What the filesystem calls of one step see: wasmtime-wasi's view and the step's ledger.
pub struct QuotaView<'a> {
    /// wasmtime-wasi's filesystem state and the step's resource table.
    pub fs: WasiFilesystemCtxView<'a>,
    /// The output directory's ledger.
    pub ledger: &'a SharedLedger,
}

struct QuotaFilesystem;

impl HasData for QuotaFilesystem {
    type Data<'a> = QuotaView<'a>;
}

/// Replaces wasmtime-wasi's `wasi:filesystem/types` in `linker` (which must already hold
/// all of WASI) with the one that keeps the quota. Shadowing leaves every other interface,
/// and `wasi:filesystem/preopens`, as wasmtime-wasi links them.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> QuotaView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = types::add_to_linker::<T, QuotaFilesystem>(linker, view);
    linker.allow_shadowing(false);
    linked
}

fn over_quota() -> FsError {
    ErrorCode::Quota.into()
}

/// What `path` under `dir` is, without leaving `dir`; `None` if there is nothing.
fn look_up(dir: &std::fs::File, path: &str, follow: bool) -> Option<Metadata> {
    let follow = if follow {
        FollowSymlinks::Yes
    } else {
        FollowSymlinks::No
    };
    cap_primitives::fs::stat(dir, Path::new(path), follow).ok()
}

impl QuotaView<'_> {
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        lock(self.ledger)
    }

    /// The directory of `fd` if it is in the output tree.
    fn output_dir(&self, fd: &Resource<Descriptor>) -> Option<Arc<std::fs::File>> {
        match self.fs.table.get(fd) {
            Ok(Descriptor::Dir(d)) if d.perms == FsPerms::ReadWrite => Some(d.dir.clone()),
            _ => None,
        }
    }

    /// The file of `fd` if it is in the output tree and open for writing (writes through
    /// any other descriptor fail, and need no charge).
    fn output_file(&self, fd: &Resource<Descriptor>) -> Option<Arc<std::fs::File>> {
        match self.fs.table.get(fd) {
            Ok(Descriptor::File(f))
                if f.perms == FsPerms::ReadWrite && f.open_mode.contains(OpenMode::WRITE) =>
            {
                Some(f.file.clone())
            }
            _ => None,
        }
    }

    /// Lets a call that may create an entry at `path` under `dir` go ahead: below the
    /// quota, or when something is there already (the call then fails, or opens it).
    fn make_room(&self, dir: &std::fs::File, path: &str, follow: bool) -> FsResult<()> {
        if self.ledger().entry_fits() || look_up(dir, path, follow).is_some() {
            return Ok(());
        }
        self.ledger().refuse_entry();
        Err(over_quota())
    }

    /// Wraps the output stream wasmtime-wasi made for `file` in one that charges its writes.
    fn counted(
        &mut self,
        file: &std::fs::File,
        stream: Resource<DynOutputStream>,
        position: Option<u64>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let inode = match Metadata::from_file(file) {
            Ok(meta) => {
                let inode = Inode::of(&meta);
                self.ledger().track(inode, meta.len());
                inode
            }
            Err(e) => {
                self.fs.table.delete(stream)?;
                return Err(ErrorCode::from(e).into());
            }
        };
        let inner = self.fs.table.delete(stream)?;
        let counted: DynOutputStream = Box::new(CountedStream::new(
            inner,
            self.ledger.clone(),
            inode,
            position,
        ));
        Ok(self.fs.table.push(counted)?)
    }
}

impl types::Host for QuotaView<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        types::Host::convert_error_code(&mut self.fs, err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        // A stream write the quota refused.
        if self.fs.table.get(&err)?.is::<OverQuota>() {
            return Ok(Some(ErrorCode::Quota));
        }
        types::Host::filesystem_error_code(&mut self.fs, err)
    }
}

impl HostDescriptor for QuotaView<'_> {
    async fn write(
        &mut self,
        fd: Resource<Descriptor>,
        buf: Vec<u8>,
        offset: types::Filesize,
    ) -> FsResult<types::Filesize> {
        let file = match self.output_file(&fd) {
            Some(file) if !buf.is_empty() => file,
            _ => return HostDescriptor::write(&mut self.fs, fd, buf, offset).await,
        };
        let meta = Metadata::from_file(&file).map_err(ErrorCode::from)?;
        let inode = Inode::of(&meta);
        let end = offset.saturating_add(buf.len() as u64);
        let before = self
            .ledger()
            .grow(inode, Some(meta.len()), Reach::To(end), false)
            .map_err(|_| over_quota())?;
        let written = HostDescriptor::write(&mut self.fs, fd, buf, offset).await;
        let landed = written.as_ref().map_or(0, |n| offset.saturating_add(*n));
        self.ledger().settle(inode, before, landed);
        written
    }

    async fn set_size(&mut self, fd: Resource<Descriptor>, size: types::Filesize) -> FsResult<()> {
        let Some(file) = self.output_file(&fd) else {
            return HostDescriptor::set_size(&mut self.fs, fd, size).await;
        };
        let meta = Metadata::from_file(&file).map_err(ErrorCode::from)?;
        let inode = Inode::of(&meta);
        let before = self
            .ledger()
            .grow(inode, Some(meta.len()), Reach::To(size), false)
            .map_err(|_| over_quota())?;
        let resized = HostDescriptor::set_size(&mut self.fs, fd, size).await;
        match resized {
            Ok(()) => self.ledger().seen(inode, size),
            Err(_) => self.ledger().settle(inode, before, 0),
        }
        resized
    }

    async fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        oflags: types::OpenFlags,
        flags: types::DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        let Some(dir) = self.output_dir(&fd) else {
            return HostDescriptor::open_at(&mut self.fs, fd, path_flags, path, oflags, flags)
                .await;
        };
        let creates = oflags.contains(types::OpenFlags::CREATE);
        if creates {
            let follow = path_flags.contains(types::PathFlags::SYMLINK_FOLLOW);
            self.make_room(&dir, &path, follow)?;
        }
        let opened =
            HostDescriptor::open_at(&mut self.fs, fd, path_flags, path, oflags, flags).await?;
        let handle = match self.fs.table.get(&opened)? {
            Descriptor::File(f) => f.file.clone(),
            Descriptor::Dir(_) => return Ok(opened),
        };
        match Metadata::from_file(&handle) {
            Ok(meta) => {
                let mut ledger = self.ledger();
                if ledger.opened(Inode::of(&meta), meta.len(), &handle) {
                    ledger.entry_made();
                }
                Ok(opened)
            }
            // A file the ledger cannot follow is not handed out; one it may have made counts.
            Err(e) => {
                if creates {
                    self.ledger().entry_made();
                }
                self.fs.table.delete(opened)?;
                Err(ErrorCode::from(e).into())
            }
        }
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let Some(dir) = self.output_dir(&fd) else {
            return HostDescriptor::create_directory_at(&mut self.fs, fd, path).await;
        };
        self.make_room(&dir, &path, false)?;
        HostDescriptor::create_directory_at(&mut self.fs, fd, path).await?;
        self.ledger().entry_made();
        Ok(())
    }

    async fn symlink_at(
        &mut self,
        fd: Resource<Descriptor>,
        src_path: String,
        dest_path: String,
    ) -> FsResult<()> {
        let Some(dir) = self.output_dir(&fd) else {
            return HostDescriptor::symlink_at(&mut self.fs, fd, src_path, dest_path).await;
        };
        self.make_room(&dir, &dest_path, false)?;
        HostDescriptor::symlink_at(&mut self.fs, fd, src_path, dest_path).await?;
        self.ledger().entry_made();
        Ok(())
    }

    async fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: types::PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        // wasmtime-wasi links only within one tree, so both ends are in the output tree or
        // the call fails. A hard link adds an entry and no bytes: its file counts once.
        let dir = match (self.output_dir(&fd), self.output_dir(&new_descriptor)) {
            (Some(_), Some(dir)) => dir,
            _ => {
                return HostDescriptor::link_at(
                    &mut self.fs,
                    fd,
                    old_path_flags,
                    old_path,
                    new_descriptor,
                    new_path,
                )
                .await;
            }
        };
        self.make_room(&dir, &new_path, false)?;
        HostDescriptor::link_at(
            &mut self.fs,
            fd,
            old_path_flags,
            old_path,
            new_descriptor,
            new_path,
        )
        .await?;
        self.ledger().entry_made();
        Ok(())
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let Some(dir) = self.output_dir(&fd) else {
            return HostDescriptor::unlink_file_at(&mut self.fs, fd, path).await;
        };
        let victim = look_up(&dir, &path, false);
        HostDescriptor::unlink_file_at(&mut self.fs, fd, path).await?;
        let mut ledger = self.ledger();
        ledger.entry_removed();
        if let Some(meta) = victim
            && meta.is_file()
            && meta.nlink() == 1
        {
            ledger.unlinked(Inode::of(&meta));
        }
        Ok(())
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        let output = self.output_dir(&fd).is_some();
        HostDescriptor::remove_directory_at(&mut self.fs, fd, path).await?;
        if output {
            self.ledger().entry_removed();
        }
        Ok(())
    }

    async fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let (Some(from), Some(to)) = (self.output_dir(&fd), self.output_dir(&new_fd)) else {
            return HostDescriptor::rename_at(&mut self.fs, fd, old_path, new_fd, new_path).await;
        };
        let moved = look_up(&from, &old_path, false).map(|m| Inode::of(&m));
        let replaced = look_up(&to, &new_path, false);
        HostDescriptor::rename_at(&mut self.fs, fd, old_path, new_fd, new_path).await?;
        // A rename over another name of the same file changes nothing; over anything else
        // it removes what was there.
        if let Some(meta) = replaced
            && moved != Some(Inode::of(&meta))
        {
            let mut ledger = self.ledger();
            ledger.entry_removed();
            if meta.is_file() && meta.nlink() == 1 {
                ledger.unlinked(Inode::of(&meta));
            }
        }
        Ok(())
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        let Some(file) = self.output_file(&fd) else {
            return HostDescriptor::write_via_stream(&mut self.fs, fd, offset);
        };
        let stream = HostDescriptor::write_via_stream(&mut self.fs, fd, offset)?;
        self.counted(&file, stream, Some(offset))
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let Some(file) = self.output_file(&fd) else {
            return HostDescriptor::append_via_stream(&mut self.fs, fd);
        };
        let stream = HostDescriptor::append_via_stream(&mut self.fs, fd)?;
        self.counted(&file, stream, None)
    }

    // What follows changes no byte or entry count: straight to wasmtime-wasi.

    async fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
        len: types::Filesize,
        advice: types::Advice,
    ) -> FsResult<()> {
        HostDescriptor::advise(&mut self.fs, fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        HostDescriptor::sync_data(&mut self.fs, fd).await
    }

    async fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorFlags> {
        HostDescriptor::get_flags(&mut self.fs, fd).await
    }

    async fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorType> {
        HostDescriptor::get_type(&mut self.fs, fd).await
    }

    async fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        HostDescriptor::set_times(&mut self.fs, fd, atim, mtim).await
    }

    async fn read(
        &mut self,
        fd: Resource<Descriptor>,
        len: types::Filesize,
        offset: types::Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        HostDescriptor::read(&mut self.fs, fd, len, offset).await
    }

    async fn read_directory(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        HostDescriptor::read_directory(&mut self.fs, fd).await
    }

    async fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        HostDescriptor::sync(&mut self.fs, fd).await
    }

    async fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<types::DescriptorStat> {
        HostDescriptor::stat(&mut self.fs, fd).await
    }

    async fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::DescriptorStat> {
        HostDescriptor::stat_at(&mut self.fs, fd, path_flags, path).await
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
        atim: types::NewTimestamp,
        mtim: types::NewTimestamp,
    ) -> FsResult<()> {
        HostDescriptor::set_times_at(&mut self.fs, fd, path_flags, path, atim, mtim).await
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        HostDescriptor::drop(&mut self.fs, fd)
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        HostDescriptor::readlink_at(&mut self.fs, fd, path).await
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: types::Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        HostDescriptor::read_via_stream(&mut self.fs, fd, offset)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        HostDescriptor::is_same_object(&mut self.fs, a, b).await
    }

    async fn metadata_hash(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<types::MetadataHashValue> {
        HostDescriptor::metadata_hash(&mut self.fs, fd).await
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: types::PathFlags,
        path: String,
    ) -> FsResult<types::MetadataHashValue> {
        HostDescriptor::metadata_hash_at(&mut self.fs, fd, path_flags, path).await
    }
}

impl HostDirectoryEntryStream for QuotaView<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<types::DirectoryEntry>> {
        HostDirectoryEntryStream::read_directory_entry(&mut self.fs, stream).await
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        HostDirectoryEntryStream::drop(&mut self.fs, stream)
    }
}
