#include "hashmap.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct node {
        struct node *next;
        const void *key;
        void *value;
        uint64_t hash;
};

struct hashmap {
        hash_fn_t hash;
        equal_fn_t equal;
        struct node **buckets;
        size_t n_buckets;        /* a power of two */
        size_t size;
};

#define MIN_BUCKETS 16u

/* FNV-1a followed by a final mix: keys here are small structs and paths. */
uint64_t hash_bytes(const void *p, size_t n)
{
        const unsigned char *b = p;
        uint64_t h = 0xcbf29ce484222325ull;

        for (size_t i = 0; i < n; i++) {
                h ^= b[i];
                h *= 0x100000001b3ull;
        }
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 33;
        return h;
}

uint64_t hash_string(const void *s) { return hash_bytes(s, strlen(s)); }
bool equal_string(const void *a, const void *b) { return strcmp(a, b) == 0; }

struct hashmap *hashmap_new(hash_fn_t hash, equal_fn_t equal)
{
        struct hashmap *h = calloc(1, sizeof(*h));

        if (!h)
                return NULL;
        h->buckets = calloc(MIN_BUCKETS, sizeof(*h->buckets));
        if (!h->buckets) {
                free(h);
                return NULL;
        }
        h->n_buckets = MIN_BUCKETS;
        h->hash = hash;
        h->equal = equal;
        return h;
}

void hashmap_free(struct hashmap *h)
{
        if (!h)
                return;
        for (size_t i = 0; i < h->n_buckets; i++) {
                struct node *n = h->buckets[i];
                while (n) {
                        struct node *next = n->next;
                        free(n);
                        n = next;
                }
        }
        free(h->buckets);
        free(h);
}

static struct node **find(const struct hashmap *h, const void *key, uint64_t hash)
{
        struct node **p = &h->buckets[hash & (h->n_buckets - 1)];

        for (; *p; p = &(*p)->next)
                if ((*p)->hash == hash && h->equal((*p)->key, key))
                        return p;
        return p;
}

static void resize(struct hashmap *h, size_t n_buckets)
{
        struct node **b = calloc(n_buckets, sizeof(*b));

        if (!b)
                return; /* keep working with longer chains */
        for (size_t i = 0; i < h->n_buckets; i++) {
                struct node *n = h->buckets[i];
                while (n) {
                        struct node *next = n->next;
                        size_t j = n->hash & (n_buckets - 1);
                        n->next = b[j];
                        b[j] = n;
                        n = next;
                }
        }
        free(h->buckets);
        h->buckets = b;
        h->n_buckets = n_buckets;
}

int hashmap_put(struct hashmap *h, const void *key, void *value)
{
        uint64_t hash = h->hash(key);
        struct node **p = find(h, key, hash), *n;

        if (*p)
                return -EEXIST;
        n = malloc(sizeof(*n));
        if (!n)
                return -ENOMEM;
        *n = (struct node){ .next = NULL, .key = key, .value = value, .hash = hash };
        *p = n;
        if (++h->size > h->n_buckets)
                resize(h, h->n_buckets * 2);
        return 0;
}

void *hashmap_get(const struct hashmap *h, const void *key)
{
        struct node **p = find(h, key, h->hash(key));

        return *p ? (*p)->value : NULL;
}

void *hashmap_remove(struct hashmap *h, const void *key)
{
        struct node **p = find(h, key, h->hash(key)), *n = *p;
        void *value;

        if (!n)
                return NULL;
        value = n->value;
        *p = n->next;
        free(n);
        /* Never shrinks: iteration may remove the current key. */
        h->size--;
        return value;
}

void *hashmap_get_or_new(struct hashmap *h, const void *key, size_t size, size_t key_offset, size_t key_size,
                         bool *created)
{
        void *v = hashmap_get(h, key);
        char *o;

        assert(key_offset + key_size <= size);
        *created = false;
        if (v)
                return v;
        o = calloc(1, size);
        if (!o)
                return NULL;
        memcpy(o + key_offset, key, key_size);
        if (hashmap_put(h, o + key_offset, o) < 0) {
                free(o);
                return NULL;
        }
        *created = true;
        return o;
}

size_t hashmap_size(const struct hashmap *h) { return h->size; }

bool hashmap_iterate(const struct hashmap *h, struct hashmap_iter *it, void **ret_value, const void **ret_key)
{
        struct node *n;

        if (!it->started) {
                it->started = true;
                it->bucket = 0;
                it->next = h->buckets[0];
        }
        n = it->next;
        while (!n) {
                if (++it->bucket >= h->n_buckets)
                        return false;
                n = h->buckets[it->bucket];
        }
        /* Remember the successor now: the caller may remove n. */
        it->next = n->next;
        if (ret_value)
                *ret_value = n->value;
        if (ret_key)
                *ret_key = n->key;
        return true;
}
