//go:build !linux

package fim

import "os"

type statInfo struct {
	uid, gid uint32
	ino      uint64
	ctimeNs  int64
}

func sysStat(fi os.FileInfo) statInfo { return statInfo{ctimeNs: fi.ModTime().UnixNano()} }

func openRegular(name string) (*os.File, error) { return os.Open(name) }
