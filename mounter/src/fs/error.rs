//! Filesystem errors and their one translation to errno.

use crate::staging::StagingError;
use crate::store::StoreError;
use crate::upload::UploadError;

/// What a filesystem operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// No such file or directory.
    #[error("no such file or directory")]
    NotFound,
    /// A directory was expected.
    #[error("not a directory")]
    NotADirectory,
    /// A file was expected.
    #[error("is a directory")]
    IsADirectory,
    /// The directory is not empty.
    #[error("directory not empty")]
    NotEmpty,
    /// The name already exists.
    #[error("file exists")]
    Exists,
    /// The mount is read-only.
    #[error("read-only mount")]
    ReadOnly,
    /// Directories cannot be renamed in one step (`mv` then copies).
    #[error("directory rename is not supported; copy and delete instead")]
    CrossDevice,
    /// The name is not UTF-8 or otherwise not a valid key.
    #[error("invalid file name")]
    InvalidName,
    /// The file handle is unknown or of the wrong kind.
    #[error("bad file handle")]
    BadHandle,
    /// An operation this filesystem does not offer.
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    /// A write was refused.
    #[error("write failed")]
    Upload(#[from] UploadError),
    /// A file changed in place failed.
    #[error("staged write failed")]
    Staging(#[from] StagingError),
    /// The object store failed.
    #[error("object store request failed")]
    Store(#[from] StoreError),
}

/// Result alias of the filesystem layer.
pub type Result<T, E = FsError> = std::result::Result<T, E>;

/// Translation of an error to the errno FUSE returns.
pub trait ToErrno {
    /// The errno.
    fn to_errno(&self) -> i32;
}

fn store_errno(error: &StoreError) -> i32 {
    match error {
        StoreError::NotFound => libc_errno::ENOENT,
        StoreError::AccessDenied { .. } | StoreError::Credentials(_) => libc_errno::EACCES,
        _ => libc_errno::EIO,
    }
}

impl ToErrno for FsError {
    fn to_errno(&self) -> i32 {
        match self {
            Self::NotFound => libc_errno::ENOENT,
            Self::NotADirectory => libc_errno::ENOTDIR,
            Self::IsADirectory => libc_errno::EISDIR,
            Self::NotEmpty => libc_errno::ENOTEMPTY,
            Self::Exists => libc_errno::EEXIST,
            Self::ReadOnly => libc_errno::EROFS,
            Self::CrossDevice => libc_errno::EXDEV,
            Self::InvalidName => libc_errno::EINVAL,
            Self::BadHandle => libc_errno::EBADF,
            Self::Unsupported(_) => libc_errno::ENOTSUP,
            Self::Upload(error) | Self::Staging(StagingError::Upload(error)) => upload_errno(error),
            Self::Staging(StagingError::TooLarge { .. }) => libc_errno::EFBIG,
            Self::Staging(StagingError::Io(_)) => libc_errno::EIO,
            Self::Staging(StagingError::Store(error)) | Self::Store(error) => store_errno(error),
        }
    }
}

fn upload_errno(error: &UploadError) -> i32 {
    match error {
        UploadError::NotSequential { .. } | UploadError::Committed => libc_errno::ENOTSUP,
        UploadError::TooLarge => libc_errno::EFBIG,
        UploadError::Store(error) => store_errno(error),
    }
}

/// The Linux errno values used here (stable ABI numbers, so no libc crate).
mod libc_errno {
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const EBADF: i32 = 9;
    pub const EACCES: i32 = 13;
    pub const EEXIST: i32 = 17;
    pub const EXDEV: i32 = 18;
    pub const ENOTDIR: i32 = 20;
    pub const EISDIR: i32 = 21;
    pub const EINVAL: i32 = 22;
    pub const EFBIG: i32 = 27;
    pub const EROFS: i32 = 30;
    pub const ENOTEMPTY: i32 = 39;
    pub const ENOTSUP: i32 = 95;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_their_errno() {
        assert_eq!(FsError::NotFound.to_errno(), 2);
        assert_eq!(
            FsError::Store(StoreError::AccessDenied { status: 403, code: String::new() }).to_errno(),
            13
        );
        assert_eq!(FsError::Store(StoreError::NoSuchBucket).to_errno(), 5);
        assert_eq!(FsError::Upload(UploadError::NotSequential { offset: 1, written: 0 }).to_errno(), 95);
    }
}
