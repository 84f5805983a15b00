/* list.h — the intrusive doubly linked list every module uses.
 *
 * A list is a `struct list` head; an item embeds a `struct list` link and
 * is found from it with list_entry().  The list is circular through its
 * head, so adding at either end and unlinking are O(1) and need no head
 * pointer.  An unlinked link points to itself (list_init), which makes
 * list_is_linked() and a second list_unlink() safe.  Header-only; owns
 * nothing. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

struct list {
        struct list *next, *prev;
};

#define LIST_INIT(name) { &(name), &(name) }

static inline void list_init(struct list *l)
{
        l->next = l->prev = l;
}

static inline bool list_is_empty(const struct list *head)
{
        return head->next == head;
}

/* Whether the link is in a list (false for an initialised, unlinked one). */
static inline bool list_is_linked(const struct list *link)
{
        return link->next != link;
}

static inline void list_link_between(struct list *link, struct list *prev, struct list *next)
{
        link->prev = prev;
        link->next = next;
        prev->next = link;
        next->prev = link;
}

static inline void list_prepend(struct list *head, struct list *link)
{
        list_link_between(link, head, head->next);
}

static inline void list_append(struct list *head, struct list *link)
{
        list_link_between(link, head->prev, head);
}

static inline void list_unlink(struct list *link)
{
        link->prev->next = link->next;
        link->next->prev = link->prev;
        list_init(link);
}

#define list_entry(link, type, member) container_of(link, type, member)

/* The first item, or NULL when the list is empty. */
#define list_first_entry(head, type, member) \
        (list_is_empty(head) ? NULL : list_entry((head)->next, type, member))

#define list_foreach_entry(pos, head, member)                                     \
        for (pos = list_entry((head)->next, __typeof__(*pos), member);           \
             &pos->member != (head);                                             \
             pos = list_entry(pos->member.next, __typeof__(*pos), member))

/* The same, letting the body unlink or free pos.  The next item is read
 * before the body runs, and the head is never read after the last one: a
 * body may free the head's owner along with the last item, and then must
 * break out. */
#define list_foreach_entry_safe(pos, tmp, head, member)                           \
        for (pos = list_entry((head)->next, __typeof__(*pos), member);           \
             &pos->member != (head) &&                                           \
             ((tmp = list_entry(pos->member.next, __typeof__(*pos), member)), 1); \
             pos = tmp)
