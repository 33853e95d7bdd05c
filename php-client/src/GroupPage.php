<?php

declare(strict_types=1);

namespace Cometbox;

/**
 * One page of a group's members (Client::members()) or of a client's
 * groups (Client::groupsOf()), in byte order of the names. Immutable.
 *
 *     $after = null;
 *     do {
 *         $page = $cometbox->members('room:42', $after, 1000);
 *         foreach ($page->names() as $client) { ... }
 *         $after = $page->next();
 *     } while ($after !== null);
 */
final class GroupPage
{
    /** @var string[] */
    private array $names;

    private int $total;

    private ?string $next;

    /** @var string[]|null */
    private ?array $online;

    /**
     * @param string[]      $names
     * @param string[]|null $online
     */
    public function __construct(array $names, int $total, ?string $next, ?array $online = null)
    {
        $this->names = $names;
        $this->total = $total;
        $this->next = $next;
        $this->online = $online;
    }

    /**
     * Reads a node's answer: $key is "members" or "groups".
     *
     * @param array<string, mixed> $data
     *
     * @internal
     */
    public static function fromArray(array $data, string $key): self
    {
        $names = [];
        foreach (is_array($data[$key] ?? null) ? $data[$key] : [] as $name) {
            if (is_string($name)) {
                $names[] = $name;
            }
        }
        $next = $data['next'] ?? null;
        $online = null;
        if (is_array($data['online'] ?? null)) {
            $online = array_values(array_filter($data['online'], 'is_string'));
        }

        return new self($names, (int) ($data['total'] ?? 0), is_string($next) ? $next : null, $online);
    }

    /**
     * The names on this page that are online (Client::members() with
     * $online); null when not asked.
     *
     * @return string[]|null
     */
    public function online(): ?array
    {
        return $this->online;
    }

    /** @return string[] the names on this page */
    public function names(): array
    {
        return $this->names;
    }

    /**
     * How many there are in all. A group's count may include members whose
     * membership expired with their queue; the group's next message
     * forgets them.
     */
    public function total(): int
    {
        return $this->total;
    }

    /** The $after of the next page; null on the last one. */
    public function next(): ?string
    {
        return $this->next;
    }
}
