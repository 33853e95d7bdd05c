<?php

declare(strict_types=1);

namespace Cometbox\Webhook;

/**
 * client_offline: a client's last poll or stream ended, and none began
 * on any node within the linger (or its node died). timeMs() is when it
 * was last seen.
 */
final class ClientOffline extends Event
{
    private string $client;

    public function __construct(string $id, string $client, int $timeMs)
    {
        parent::__construct($id, 'client_offline', $timeMs);
        $this->client = $client;
    }

    public function client(): string
    {
        return $this->client;
    }
}
