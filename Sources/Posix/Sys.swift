import Glibc

/// The system layer's one façade: each raw POSIX call is a static function
/// here that retries EINTR (through `syscall`) and throws a `SystemError`
/// naming the call and the path it worked on. Modules above `Posix` (and
/// `FastCGI`) call these instead of Glibc; `scripts/lint` keeps it so.
///
/// Calls are grouped by subject in `Sys+<Subject>.swift` files.
package enum Sys {}
