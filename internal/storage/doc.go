// Package storage is the backup repository under BACKUP_STORAGE_PATH.
//
// A backup is a directory <root>/<location>/<id>/ that holds a plaintext
// manifest.json and data objects. Every object is encrypted with age to the
// repository's X25519 recipient, after an optional zstd compression, so that an
// operator can read any object without the service:
//
//	age -d -i key.txt OBJECT.zst.age | zstd -d > OBJECT
//
// Writes are atomic: a backup is written into <id>.partial/ and becomes visible
// only when Writer.Commit renames the directory after fsyncing every file and
// directory in it. A killed writer therefore leaves at most a .partial directory,
// which is never read as a backup and which the next NewBackup of the same id
// removes.
//
// Every file operation goes through an os.Root opened on the repository root, so
// that neither a crafted name nor a symbolic link can reach outside it.
package storage
