package fim

import (
	"os"
	"syscall"
)

// statInfo is what the baseline keeps of a file's inode beyond os.FileInfo.
type statInfo struct {
	uid, gid uint32
	ino      uint64
	ctimeNs  int64
}

func sysStat(fi os.FileInfo) statInfo {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return statInfo{ctimeNs: fi.ModTime().UnixNano()}
	}
	return statInfo{uid: st.Uid, gid: st.Gid, ino: st.Ino, ctimeNs: st.Ctim.Sec*1e9 + st.Ctim.Nsec}
}

// openRegular opens name for hashing without following a symlink and
// without blocking if it was replaced by a FIFO since it was examined.
func openRegular(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
}
