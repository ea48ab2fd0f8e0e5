/// A subcommand that could not do its work at run time (a file it cannot
/// read, a spool it cannot open): argument-parser prints the message after
/// "Error: " and exits 1. A bad flag is a `ValidationError` instead (exit 64).
struct CommandFailure: Error, CustomStringConvertible {
    let description: String

    init(_ description: String) {
        self.description = description
    }
}
