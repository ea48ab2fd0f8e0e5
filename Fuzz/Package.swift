// swift-tools-version:6.0
// libFuzzer targets for hookguard's parsers of untrusted input. A package of
// its own, so the root package's `swift build` and `swift test` never build
// them; scripts/fuzz builds them with `--sanitize=fuzzer --sanitize=address`.
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

/// One executable per fuzz target; its directory under Corpus/ holds the seeds.
let targets = ["signatures", "envelope", "secrets", "request", "nginx"]

let package = Package(
    name: "hookguard-fuzz",
    dependencies: [
        // A link to the repository root: a path dependency is known by its last
        // path component, and the root's own directory name varies between clones.
        .package(path: "hookguard"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .target(
            name: "FuzzSupport",
            dependencies: [.product(name: "HookguardCore", package: "hookguard")],
            swiftSettings: strictSettings
        ),
    ] + targets.map { name in
        .executableTarget(
            name: name,
            dependencies: [
                "FuzzSupport",
                .product(name: "HookguardCore", package: "hookguard"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        )
    }
)
