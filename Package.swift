// swift-tools-version:6.0
import PackageDescription

// The modules, each answering one question; a module imports only those
// listed before it (scripts/lib/module-graph checks it):
//   Posix          every raw system call, behind one façade (and CLinux)
//   FastCGI        the wire: request, response, CGI, listener, server, supervisor, launch
//   Receiver       a location's configuration, signing schemes, delivery, the handler
//   Drain          consuming a spool: claims, commands, HTTP forwarding
//   Doctor         checking nginx configuration against the locations
//   hookguard      the executable: flags → values → wiring
//   HookguardTesting  what the unit tests and the fuzz targets share

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let metrics = Target.Dependency.product(name: "Metrics", package: "swift-metrics")

let package = Package(
    name: "hookguard",
    platforms: [.macOS(.v15)],
    products: [.executable(name: "hookguard", targets: ["hookguard"])],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
    ],
    targets: [
        .systemLibrary(name: "CFastCGI", pkgConfig: "fcgi", providers: [.apt(["libfcgi-dev"])]),
        .systemLibrary(name: "CLibCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CNats", pkgConfig: "libnats", providers: [.apt(["libnats-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // Linux and glibc calls Swift's Glibc module leaves out (syncfs, sync_file_range, mallopt).
        .target(name: "CLinux"),

        .target(name: "Posix", dependencies: ["CLinux"], swiftSettings: strictSettings),
        .target(name: "FastCGI", dependencies: ["CFastCGI", "Posix", logging], swiftSettings: strictSettings),
        .target(
            name: "Receiver",
            dependencies: ["Posix", "FastCGI", "CLibCrypto", "CNats", logging, metrics],
            swiftSettings: strictSettings
        ),
        .target(
            name: "Drain",
            dependencies: ["Posix", "FastCGI", "Receiver", "CCurl", logging, metrics],
            swiftSettings: strictSettings
        ),
        .target(name: "Doctor", dependencies: ["Posix", "FastCGI", "Receiver"], swiftSettings: strictSettings),
        .executableTarget(
            name: "hookguard",
            dependencies: [
                "Posix", "FastCGI", "Receiver", "Drain", "Doctor",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                logging, metrics,
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "HookguardTesting",
            dependencies: [
                "Posix", "FastCGI", "Receiver", logging,
                .product(name: "InMemoryLogging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        // bench/run's HMAC measurement (5 MiB against `openssl speed`); not a test.
        .executableTarget(
            name: "hmac-bench",
            dependencies: ["Receiver"],
            path: "bench/hmac",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HookguardTests",
            dependencies: ["Posix", "FastCGI", "Receiver", "Drain", "Doctor", "HookguardTesting"],
            resources: [.copy("Vectors")],
            swiftSettings: strictSettings
        ),
    ]
)

/// The libFuzzer targets for the parsers of untrusted input (Fuzz/Sources),
/// declared only for scripts/fuzz (HOOKGUARD_FUZZ=1, its own scratch path):
/// libFuzzer supplies their `main`, so an ordinary build could not link them.
let fuzzTargets = ["signatures", "envelope", "secrets", "request", "nginx"]
if Context.environment["HOOKGUARD_FUZZ"] == "1" {
    package.targets +=
        [
            .target(
                name: "FuzzSupport",
                dependencies: ["Receiver", "HookguardTesting"],
                path: "Fuzz/Sources/FuzzSupport",
                swiftSettings: strictSettings
            )
        ]
        + fuzzTargets.map { name in
            .executableTarget(
                name: name,
                dependencies: ["FuzzSupport", "Posix", "FastCGI", "Receiver", "Doctor", "HookguardTesting", logging],
                path: "Fuzz/Sources/\(name)",
                swiftSettings: strictSettings
            )
        }
    package.products += fuzzTargets.map { .executable(name: $0, targets: [$0]) }
}
