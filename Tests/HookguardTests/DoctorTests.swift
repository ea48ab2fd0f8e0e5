import Glibc
import HookguardTesting
import Testing

@testable import Doctor
@testable import Drain
@testable import FastCGI
@testable import Posix
@testable import Receiver

@Suite struct DoctorTests {
    @Test func nginxLocationsWithTheirBodyLimits() throws {
        let config = """
            http {
                client_max_body_size 2m;   # for every server
                server {
                    listen 80;
                    location = /hooks/tito {
                        fastcgi_param HOOKGUARD_SCHEME tito;
                        fastcgi_param HOOKGUARD_SECRET "two words; and a # sign";
                        include snippets/hookguard.conf;
                    }
                    location /static { root /srv; }
                }
                server {
                    client_max_body_size 0;
                    location ~ ^/hooks/(gh|github)$ {
                        client_max_body_size 30m;
                        fastcgi_param HOOKGUARD_SCHEME 'github';
                    }
                    location = /unlimited { fastcgi_param HOOKGUARD_SCHEME x-signature; }
                }
            }
            """
        let locations = try NginxConfig.locations(in: config)
        #expect(locations.map(\.name) == ["= /hooks/tito", "~ ^/hooks/(gh|github)$", "= /unlimited"])
        #expect(locations[0].params["HOOKGUARD_SECRET"] == "two words; and a # sign")
        #expect(locations[0].clientMaxBodySize == 2 * 1024 * 1024)
        #expect(locations[1].params["HOOKGUARD_SCHEME"] == "github")
        #expect(locations[1].clientMaxBodySize == 30 * 1024 * 1024)
        #expect(locations[2].clientMaxBodySize == nil)
    }

    @Test func nginxDefaultBodyLimitIsOneMegabyte() throws {
        let locations = try NginxConfig.locations(
            in: "server { location = /h { fastcgi_param HOOKGUARD_SCHEME tito; } }")
        #expect(locations.first?.clientMaxBodySize == 1024 * 1024)
    }

    @Test func brokenConfigsAreErrors() {
        #expect(throws: NginxConfigError.self) { try NginxConfig.locations(in: "server { location / {") }
        #expect(throws: NginxConfigError.self) { try NginxConfig.locations(in: "server { } }") }
        #expect(throws: NginxConfigError.self) { try NginxConfig.locations(in: "server { fastcgi_param A \"b; }") }
    }

    @Test func sizes() {
        #expect(NginxConfig.parseSize("25m") == 25 * 1024 * 1024)
        #expect(NginxConfig.parseSize("512K") == 512 * 1024)
        #expect(NginxConfig.parseSize("1g") == 1024 * 1024 * 1024)
        #expect(NginxConfig.parseSize("1000") == 1000)
        #expect(NginxConfig.parseSize("lots") == nil)
    }

    @Test func bodyLimitCheck() {
        let doctor = LocationDoctor(user: .current())
        #expect(doctor.bodyLimit(hookguard: 25 << 20, nginx: 1 << 20).passed == false)
        #expect(doctor.bodyLimit(hookguard: 25 << 20, nginx: 25 << 20).passed)
        #expect(doctor.bodyLimit(hookguard: 25 << 20, nginx: nil).passed)
    }

    @Test func readPermissionsFollowOwnerGroupOther() {
        let st = FileStatus(kind: .regular, permissions: 0o640, owner: 1000, group: 2000)
        let owner = ServiceUser(name: "o", uid: 1000, groups: [1000])
        let member = ServiceUser(name: "m", uid: 1001, groups: [2000])
        let stranger = ServiceUser(name: "s", uid: 1002, groups: [1002])
        #expect(owner.may(4, st) && owner.may(2, st))
        #expect(member.may(4, st) && !member.may(2, st))
        #expect(!stranger.may(4, st))
    }
}
