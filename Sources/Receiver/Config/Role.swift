package import FastCGI

/// What a location is for (HOOKGUARD_ROLE): receiving webhooks, the default,
/// or answering a monitoring check. The raw value is the parameter's spelling.
package enum Role: String, Sendable, CaseIterable {
    case receiver, metrics, health

    /// The location's role; nil when HOOKGUARD_ROLE names none (unset or empty is `receiver`).
    package init?(_ params: RequestParams) {
        let text = params[Parameter.role.rawValue] ?? ""
        self.init(rawValue: text.isEmpty ? Role.receiver.rawValue : text)
    }

    /// "receiver, metrics, health", for messages.
    package static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}
