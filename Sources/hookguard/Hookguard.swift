import ArgumentParser

@main
struct Hookguard: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hookguard",
        abstract: "Verifies signed webhooks behind nginx or Apache and spools them durably.",
        discussion: """
            Each web-server location names its sender's scheme, secret and spool with \
            HOOKGUARD_* FastCGI parameters; docs/ (/usr/share/doc/hookguard/docs/) has the reference.
            """,
        version: Hookguard.version,
        subcommands: [
            Serve.self,
            Doctor.self,
            Sign.self,
            Verify.self,
            Drain.self,
            SpoolStatus.self,
            PublishToNATS.self,
        ]
    )
}
