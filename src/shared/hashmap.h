/* hashmap.h — a chained hash table with caller-supplied hash and equality,
 * growing as it fills so lookups stay O(1).  It owns its buckets, never the
 * keys or values it points to. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t (*hash_fn_t)(const void *key);
typedef bool (*equal_fn_t)(const void *a, const void *b);

struct hashmap;

struct hashmap *hashmap_new(hash_fn_t hash, equal_fn_t equal);
void hashmap_free(struct hashmap *h);
/* -EEXIST if an equal key is present, -ENOMEM. */
int hashmap_put(struct hashmap *h, const void *key, void *value);
void *hashmap_get(const struct hashmap *h, const void *key);
/* Removes and returns the value stored under key, or NULL. */
void *hashmap_remove(struct hashmap *h, const void *key);
size_t hashmap_size(const struct hashmap *h);
/* The value stored under key; or, when there is none, a new zeroed object
 * of size bytes whose key (key_size bytes at key_offset) is a copy of key,
 * stored under that copy.  *created says which; NULL: out of memory. */
void *hashmap_get_or_new(struct hashmap *h, const void *key, size_t size, size_t key_offset, size_t key_size,
                         bool *created);
/* Iteration: start from HASHMAP_ITER_INIT; returns false at the end.  The map
 * must not change while iterating, except by removing the current key. */
struct hashmap_iter {
        size_t bucket;
        void *next;
        bool started;
};
#define HASHMAP_ITER_INIT ((struct hashmap_iter){ 0, NULL, false })
bool hashmap_iterate(const struct hashmap *h, struct hashmap_iter *it, void **ret_value, const void **ret_key);

uint64_t hash_bytes(const void *p, size_t n);
uint64_t hash_string(const void *s);
bool equal_string(const void *a, const void *b);
