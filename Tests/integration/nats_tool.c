/* A JetStream client for the tests, on Debian's libnats, independent of hookguard:
 *   nats_tool URL TOKEN add-stream NAME SUBJECT DUPLICATE_WINDOW_SECONDS
 *   nats_tool URL TOKEN dump NAME     one JSON object per stored message:
 *                                     {"seq":N,"subject":"…","headers":{…},"data":"<base64>"}
 */
#include <nats/nats.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void die(const char *what, natsStatus s, jsErrCode e) {
    fprintf(stderr, "%s: %s (js error %d) %s\n", what, natsStatus_GetText(s), (int)e, nats_GetLastError(NULL));
    exit(1);
}

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20) printf("\\u%04x", *s);
        else putchar(*s);
    }
    putchar('"');
}

static void base64(const unsigned char *p, int n) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    putchar('"');
    for (int i = 0; i < n; i += 3) {
        int v = p[i] << 16 | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        putchar(t[v >> 18 & 63]);
        putchar(t[v >> 12 & 63]);
        putchar(i + 1 < n ? t[v >> 6 & 63] : '=');
        putchar(i + 2 < n ? t[v & 63] : '=');
    }
    putchar('"');
}

int main(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: see the source\n"); return 2; }
    natsOptions *opts; natsConnection *nc; jsCtx *js; jsErrCode e = 0; natsStatus s;
    natsOptions_Create(&opts);
    natsOptions_SetURL(opts, argv[1]);
    if (argv[2][0]) natsOptions_SetToken(opts, argv[2]);
    if ((s = natsConnection_Connect(&nc, opts)) != NATS_OK) die("connect", s, 0);
    if ((s = natsConnection_JetStream(&js, nc, NULL)) != NATS_OK) die("jetstream", s, 0);
    if (strcmp(argv[3], "add-stream") == 0 && argc == 7) {
        jsStreamConfig cfg; jsStreamInfo *si = NULL;
        const char *subjects[1] = { argv[5] };
        jsStreamConfig_Init(&cfg);
        cfg.Name = argv[4];
        cfg.Subjects = subjects;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        cfg.Duplicates = (int64_t)atoi(argv[6]) * 1000000000LL;
        if ((s = js_AddStream(&si, js, &cfg, NULL, &e)) != NATS_OK) die("add-stream", s, e);
        jsStreamInfo_Destroy(si);
    } else if (strcmp(argv[3], "dump") == 0) {
        jsStreamInfo *si = NULL;
        if ((s = js_GetStreamInfo(&si, js, argv[4], NULL, &e)) != NATS_OK) die("stream-info", s, e);
        for (uint64_t seq = si->State.FirstSeq; si->State.Msgs > 0 && seq <= si->State.LastSeq; seq++) {
            natsMsg *m = NULL;
            if ((s = js_GetMsg(&m, js, argv[4], seq, NULL, &e)) != NATS_OK) continue; /* deleted */
            printf("{\"seq\":%llu,\"subject\":", (unsigned long long)seq);
            json_string(natsMsg_GetSubject(m));
            printf(",\"headers\":{");
            const char **keys = NULL; int count = 0;
            if (natsMsgHeader_Keys(m, &keys, &count) == NATS_OK) {
                for (int i = 0; i < count; i++) {
                    const char *v = NULL;
                    natsMsgHeader_Get(m, keys[i], &v);
                    if (i) putchar(',');
                    json_string(keys[i]); putchar(':'); json_string(v ? v : "");
                }
                free((void *)keys);
            }
            printf("},\"data\":");
            base64((const unsigned char *)natsMsg_GetData(m), natsMsg_GetDataLength(m));
            printf("}\n");
            natsMsg_Destroy(m);
        }
        jsStreamInfo_Destroy(si);
    } else { fprintf(stderr, "unknown command\n"); return 2; }
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(opts);
    return 0;
}
