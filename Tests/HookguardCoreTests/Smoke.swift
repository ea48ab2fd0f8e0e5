import Testing
@testable import HookguardCore
@Test func smoke() { #expect(true) }
