<?php

declare(strict_types=1);

namespace Cometbox\Webhook;

/**
 * client_online: a node began to hold a poll or stream of a client that
 * was offline. timeMs() is when.
 */
final class ClientOnline extends Event
{
    private string $client;

    public function __construct(string $id, string $client, int $timeMs)
    {
        parent::__construct($id, 'client_online', $timeMs);
        $this->client = $client;
    }

    public function client(): string
    {
        return $this->client;
    }
}
