#include "libxl-emu.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

struct kv {
        const char *key;
        const char *value;  /* NULL: not written */
};

static bool write_kvs(struct xs_handle *xs, xs_transaction_t t, const char *dir, const struct kv *kvs,
                      size_t n, struct xs_permissions *perms, unsigned nperms)
{
        for (size_t i = 0; i < n; i++) {
                _cleanup_free_ char *p = NULL;

                if (!kvs[i].value)
                        continue;
                if (asprintf(&p, "%s/%s", dir, kvs[i].key) < 0) {
                        p = NULL;
                        errno = ENOMEM;
                        return false;
                }
                if (!xs_write(xs, t, p, kvs[i].value, strlen(kvs[i].value)))
                        return false;
                if (perms && !xs_set_permissions(xs, t, p, perms, nperms))
                        return false;
        }
        return true;
}

/* Ends t: 0 when committed, -EAGAIN to run it again, else -errno. */
static int commit(struct xs_handle *xs, xs_transaction_t t, bool ok)
{
        int r;

        if (!ok) {
                r = negative_errno();
                xs_transaction_end(xs, t, true);
                return r;
        }
        if (xs_transaction_end(xs, t, false))
                return 0;
        return negative_errno();
}

int libxl_vdev_to_devid(const char *vdev)
{
        const char *p;
        int disk = 0, part = 0;
        char *end;

        if (strncmp(vdev, "xvd", 3) == 0)
                p = vdev + 3;
        else if (strncmp(vdev, "sd", 2) == 0 || strncmp(vdev, "hd", 2) == 0)
                p = vdev + 2;
        else {
                long n = strtol(vdev, &end, 10);
                return (*vdev && !*end && n >= 0 && n < (1L << 30)) ? (int)n : -1;
        }
        if (*p < 'a' || *p > 'z')
                return -1;
        while (*p >= 'a' && *p <= 'z')
                disk = disk * 26 + (*p++ - 'a' + 1);
        disk--;
        if (*p) {
                part = (int)strtol(p, &end, 10);
                if (*end || part < 0)
                        return -1;
        }
        if (vdev[0] == 'x') {
                if (disk < 16 && part < 16)
                        return (202 << 8) | (disk << 4) | part;
                if (part > 255)
                        return -1;
                return (1 << 28) | (disk << 8) | part;
        }
        if (vdev[0] == 's') {
                if (disk >= 16 || part >= 16)
                        return -1;
                return (8 << 8) | (disk << 4) | part;
        }
        /* hd: hda-hdd on major 3, hde-hdh on major 22 */
        if (disk >= 4 || part >= 64)
                return -1;
        return (((disk < 2) ? 3 : 22) << 8) | ((disk & 1) << 6) | part;
}

int libxl_disk_paths(struct libxl_disk *d, const char *home)
{
        if (asprintf(&d->fe, "/local/domain/%" PRIu32 "/device/vbd/%" PRIu32, d->domid, d->devid) < 0)
                d->fe = NULL;
        if (asprintf(&d->be, "%s/backend/vbd/%" PRIu32 "/%" PRIu32, home, d->domid, d->devid) < 0)
                d->be = NULL;
        if (asprintf(&d->lx, "/libxl/%" PRIu32 "/device/vbd/%" PRIu32, d->domid, d->devid) < 0)
                d->lx = NULL;
        if (!d->fe || !d->be || !d->lx) {
                libxl_disk_paths_free(d);
                return -ENOMEM;
        }
        return 0;
}

void libxl_disk_paths_free(struct libxl_disk *d)
{
        free(d->fe);
        free(d->be);
        free(d->lx);
        d->fe = d->be = d->lx = NULL;
}

char *libxl_script_path(const char *script)
{
        char *s;

        if (script[0] == '/' || script[0] == '\0')
                return strdup(script);
        return asprintf(&s, "%s/%s", LIBXL_SCRIPT_DIR, script) < 0 ? NULL : s;
}

int libxl_domain_create(struct xs_handle *xs, uint32_t domid, const char *name)
{
        char dom[64], vm[96], lx[64], lxdev[80], device[80], error[80], data[80], uuid[64], domid_s[16],
                defname[32];
        struct xs_permissions roperm[2], noperm[1], rwperm[1];
        int r;

        snprintf(domid_s, sizeof(domid_s), "%" PRIu32, domid);
        snprintf(uuid, sizeof(uuid), "00000000-0000-0000-0000-%012" PRIx32, domid);
        snprintf(dom, sizeof(dom), "/local/domain/%" PRIu32, domid);
        snprintf(vm, sizeof(vm), "/vm/%s", uuid);
        snprintf(lx, sizeof(lx), "/libxl/%" PRIu32, domid);
        snprintf(lxdev, sizeof(lxdev), "%s/device", lx);
        snprintf(device, sizeof(device), "%s/device", dom);
        snprintf(error, sizeof(error), "%s/error", dom);
        snprintf(data, sizeof(data), "%s/data", dom);
        snprintf(defname, sizeof(defname), "guest%" PRIu32, domid);
        if (!name)
                name = defname;
        const struct kv domkv[] = { { "vm", vm }, { "name", name }, { "domid", domid_s } };
        const struct kv vmkv[] = { { "uuid", uuid }, { "name", name } };

        roperm[0] = (struct xs_permissions){ .id = 0, .perms = XS_PERM_NONE };
        roperm[1] = (struct xs_permissions){ .id = domid, .perms = XS_PERM_READ };
        noperm[0] = (struct xs_permissions){ .id = 0, .perms = XS_PERM_NONE };
        rwperm[0] = (struct xs_permissions){ .id = domid, .perms = XS_PERM_NONE };

        do {
                xs_transaction_t t = xs_transaction_start(xs);

                if (t == XBT_NULL)
                        return negative_errno();
                r = commit(xs, t,
                           (xs_rm(xs, t, dom) || errno == ENOENT) &&
                           xs_mkdir(xs, t, dom) && xs_set_permissions(xs, t, dom, roperm, 2) &&
                           (xs_rm(xs, t, vm) || errno == ENOENT) &&
                           xs_mkdir(xs, t, vm) && xs_set_permissions(xs, t, vm, roperm, 2) &&
                           (xs_rm(xs, t, lx) || errno == ENOENT) &&
                           xs_mkdir(xs, t, lx) && xs_set_permissions(xs, t, lx, noperm, 1) &&
                           xs_mkdir(xs, t, lxdev) && xs_set_permissions(xs, t, lxdev, noperm, 1) &&
                           write_kvs(xs, t, dom, domkv, ARRAY_SIZE(domkv), NULL, 0) &&
                           write_kvs(xs, t, vm, vmkv, ARRAY_SIZE(vmkv), NULL, 0) &&
                           xs_mkdir(xs, t, device) && xs_set_permissions(xs, t, device, roperm, 2) &&
                           xs_mkdir(xs, t, error) && xs_set_permissions(xs, t, error, rwperm, 1) &&
                           xs_mkdir(xs, t, data) && xs_set_permissions(xs, t, data, rwperm, 1));
        } while (r == -EAGAIN);
        return r;
}

int libxl_disk_add(struct xs_handle *xs, const struct libxl_disk *d)
{
        char domid_s[16], devid_s[16], bdom_s[16];
        _cleanup_free_ char *lx_fe = NULL, *lx_be = NULL, *fe_be = NULL, *be_fe = NULL;
        struct xs_permissions fe_perms[2], be_perms[2];
        bool rw = d->mode[0] == 'w';
        int r;

        snprintf(domid_s, sizeof(domid_s), "%" PRIu32, d->domid);
        snprintf(devid_s, sizeof(devid_s), "%" PRIu32, d->devid);
        snprintf(bdom_s, sizeof(bdom_s), "%" PRIu32, d->backend_domid);
        if (asprintf(&lx_fe, "%s/frontend", d->lx) < 0 || asprintf(&lx_be, "%s/backend", d->lx) < 0 ||
            asprintf(&fe_be, "%s/backend", d->fe) < 0 || asprintf(&be_fe, "%s/frontend", d->be) < 0)
                return -ENOMEM;

        /* Frontend: the guest owns it, the backend reads it.  Backend: the
         * backend domain owns it, the guest reads it. */
        fe_perms[0] = (struct xs_permissions){ .id = d->domid, .perms = XS_PERM_NONE };
        fe_perms[1] = (struct xs_permissions){ .id = d->backend_domid, .perms = XS_PERM_READ };
        be_perms[0] = (struct xs_permissions){ .id = d->backend_domid, .perms = XS_PERM_NONE };
        be_perms[1] = (struct xs_permissions){ .id = d->domid, .perms = XS_PERM_READ };

        /* Node order as libxl's device_disk_add() builds them. */
        const struct kv back[] = {
                { "params", d->params },
                { "script", d->script },
                { "frontend-id", domid_s },
                { "online", "1" },
                { "removable", "0" },
                { "bootable", "1" },
                { "state", "1" },
                { "dev", d->vdev },
                { "type", "phy" },
                { "mode", d->mode },
                { "device-type", d->cdrom ? "cdrom" : "disk" },
                /* libxl defaults discard_enable to the disk's writability. */
                { "discard-enable", rw ? "1" : "0" },
                { "specification", "xen" },
        };
        const struct kv front[] = {
                { "backend-id", bdom_s },
                { "state", "1" },
                { "virtual-device", devid_s },
                { "device-type", d->cdrom ? "cdrom" : "disk" },
                { "trusted", "1" },
                /* Only PV guests get the protocol node from libxl. */
                { "protocol", d->pv ? "x86_64-abi" : NULL },
        };

        do {
                xs_transaction_t t = xs_transaction_start(xs);
                unsigned len;
                char *v;

                if (t == XBT_NULL)
                        return negative_errno();
                /* libxl__device_exists(): the libxl copy marks a used devid. */
                v = xs_read(xs, t, d->lx, &len);
                if (v) {
                        free(v);
                        xs_transaction_end(xs, t, true);
                        return -EEXIST;
                }
                r = commit(xs, t,
                           xs_write(xs, t, lx_fe, d->fe, strlen(d->fe)) &&
                           xs_write(xs, t, lx_be, d->be, strlen(d->be)) &&
                           (xs_rm(xs, t, d->fe) || errno == ENOENT) &&
                           xs_mkdir(xs, t, d->fe) &&
                           xs_set_permissions(xs, t, d->fe, fe_perms, 2) &&
                           xs_write(xs, t, fe_be, d->be, strlen(d->be)) &&
                           write_kvs(xs, t, d->fe, front, ARRAY_SIZE(front), fe_perms, 2) &&
                           (xs_rm(xs, t, d->be) || errno == ENOENT) &&
                           xs_mkdir(xs, t, d->be) &&
                           xs_set_permissions(xs, t, d->be, be_perms, 2) &&
                           xs_write(xs, t, be_fe, d->fe, strlen(d->fe)) &&
                           write_kvs(xs, t, d->be, back, ARRAY_SIZE(back), NULL, 0) &&
                           write_kvs(xs, t, d->lx, back, ARRAY_SIZE(back), NULL, 0));
        } while (r == -EAGAIN);
        return r;
}

void libxl_path_cleanup(struct xs_handle *xs, xs_transaction_t t, const char *path)
{
        _cleanup_free_ char *p = strdup(path);
        char *slash;

        if (!p || !xs_rm(xs, t, p))
                return;
        while ((slash = strrchr(p, '/')) && slash != p) {
                unsigned len, n;
                char *v, **d;
                bool empty;

                *slash = '\0';
                v = xs_read(xs, t, p, &len);
                empty = v && !*v;
                free(v);
                if (!empty)
                        return;
                d = xs_directory(xs, t, p, &n);
                free(d);
                if (!d || n != 0)
                        return;
                if (!xs_rm(xs, t, p))
                        return;
        }
}

int libxl_disk_destroy(struct xs_handle *xs, const char *fe, const char *be, const char *lx)
{
        int r;

        do {
                xs_transaction_t t = xs_transaction_start(xs);

                if (t == XBT_NULL)
                        return negative_errno();
                /* As the toolstack in dom0 (which also runs the backend, or
                 * tidies its parent): frontend, libxl copy, backend. */
                libxl_path_cleanup(xs, t, fe);
                libxl_path_cleanup(xs, t, lx);
                libxl_path_cleanup(xs, t, be);
                r = commit(xs, t, true);
        } while (r == -EAGAIN);
        return r;
}

int libxl_disk_start_close(struct xs_handle *xs, const char *fe, const char *be, bool force)
{
        _cleanup_free_ char *state_p = NULL, *online_p = NULL;
        int r;

        if (asprintf(&state_p, "%s/state", be) < 0 || asprintf(&online_p, "%s/online", be) < 0)
                return -ENOMEM;
        do {
                xs_transaction_t t = xs_transaction_start(xs);
                unsigned len;
                char *state;
                bool ok;

                if (t == XBT_NULL)
                        return negative_errno();
                if (force)
                        libxl_path_cleanup(xs, t, fe);
                state = xs_read(xs, t, state_p, &len);
                if (!state) {
                        /* libxl abandons the transaction here, forced frontend
                         * cleanup included; the destroy step does it. */
                        r = errno == ENOENT ? 1 : negative_errno();
                        xs_transaction_end(xs, t, true);
                        return r;
                }
                ok = xs_write(xs, t, online_p, "0", 1) &&
                     (atoi(state) == 6 || xs_write(xs, t, state_p, "5", 1));
                free(state);
                r = commit(xs, t, ok);
        } while (r == -EAGAIN);
        return r;
}
