// swift-tools-version:6.0
import PackageDescription

/// HookguardCore goes without MemberImportVisibility: on Swift 6.3 a clean build
/// of it attributes `struct timespec`'s members to SwiftOverlayShims in some
/// compile batches (files importing only Glibc then fail on `st_mtim.tv_sec`
/// and `timespec()`), while an incremental build of the same sources passes.
let coreSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]
let strictSettings: [SwiftSetting] = coreSettings + [.enableUpcomingFeature("MemberImportVisibility")]

let package = Package(
    name: "hookguard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "hookguard", targets: ["hookguard"]),
        .library(name: "HookguardCore", targets: ["HookguardCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CFastCGI",
            pkgConfig: "fcgi",
            providers: [.apt(["libfcgi-dev"])]
        ),
        .systemLibrary(
            name: "CLibCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CNats",
            pkgConfig: "libnats",
            providers: [.apt(["libnats-dev"])]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // Linux and glibc calls Swift's Glibc module leaves out (syncfs, sync_file_range, mallopt).
        .target(name: "CLinux"),
        .target(
            name: "HookguardCore",
            dependencies: [
                "CLinux",
                "CLibCrypto",
                "CNats",
                "CCurl",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: coreSettings
        ),
        .target(
            name: "FastCGI",
            dependencies: ["CFastCGI", "HookguardCore"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "hookguard",
            dependencies: [
                "HookguardCore",
                "FastCGI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        // bench/run's HMAC measurement (5 MiB against `openssl speed`); not a test.
        .executableTarget(
            name: "hmac-bench",
            dependencies: ["HookguardCore"],
            path: "bench/hmac",
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "HookguardCoreTests",
            dependencies: ["HookguardCore"],
            resources: [.copy("Vectors")],
            swiftSettings: strictSettings
        ),
    ]
)
